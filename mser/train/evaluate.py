"""The one evaluation loop, shared by dev evaluation in training and by decoding: every batch
read and every stream encoded once, the fusion run under each stream condition.

    for batch, outputs in condition_outputs(model, loader, device, ["both", "audio_only"]):
        ...  # outputs: condition -> task -> (B, C) float32 (emotion: the logits)
"""
import torch

from mser.utils.conditions import stream_conditions


def to_device(batch, device):
    """The batch's tensors on ``device``, those of nested dicts (targets) too; utterance ids
    stay."""
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True) if torch.is_tensor(batch) else batch


def condition_streams(model, conditions):
    """{condition: its streams} of ``conditions``, which ``model`` must be able to serve."""
    available = stream_conditions(model.modalities)
    unknown = [c for c in conditions if c not in available]
    if unknown:
        raise ValueError(f"conditions {unknown} are not among those of a model with streams "
                         f"{list(model.modalities)}: {list(available)}")
    return {c: available[c] for c in conditions}


@torch.no_grad()
def condition_outputs(model, loader, device, conditions, keep_for=None):
    """Yield ``(batch on device, {condition: {task: outputs}})`` for every batch of ``loader``,
    ``model`` in eval mode, each stream encoded once for all conditions
    (:meth:`~mser.nets.model.EmotionModel.condition_outputs`). ``keep_for(batch, streams)``, if
    given, returns the ``keep`` masks of a condition (e.g. no text for an empty transcript)."""
    model.eval()
    streams_of = condition_streams(model, conditions)
    for batch in loader:
        batch = to_device(batch, device)
        yield batch, model.condition_outputs(batch, streams_of, keep_for)
