"""Frame-level tensor helpers shared by the dataset and the networks: padding masks and the
frame averaging of a ``projection: pool`` front end, which the dataset can apply once when it
reads an utterance (and the normalisation after it) instead of the model on every batch: the
same numbers, a quarter of the frames to copy, pad and normalise per step."""
import torch


def padding_mask(lengths, max_len):
    """(B, T) bool, True at padded positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


def frames_pooled(projection, subsampling):
    """Frames a stream's front end averages before anything else: ``subsampling`` with
    ``projection: pool``, else 1 (a convolution or no projection sees every frame)."""
    return subsampling if projection == "pool" else 1


def input_pooling(model_conf):
    """{stream: frames averaged} of a resolved model conf's streams that average more than one
    frame (:func:`frames_pooled`)."""
    factors = {name: frames_pooled(model_conf["projection"], stream["subsampling"])
               for name, stream in model_conf["streams"].items()}
    return {name: factor for name, factor in factors.items() if factor > 1}


def input_normalization(model_conf):
    """Streams of a resolved model conf whose front end first averages frames and then
    normalises every column by itself (``normalize`` with ``layer_weighting: concat``): a
    dataset holding the statistics can do both once per utterance, with the same numbers."""
    if model_conf["layer_weighting"] != "concat":
        return []
    return [name for name in input_pooling(model_conf) if model_conf["streams"][name]["normalize"]]


def average_pool(x, lengths, factor):
    """(B, T, C) -> (B, ceil(T / factor), C): each group of ``factor`` frames averaged over its
    valid ones (padding never enters a mean); lengths ceil(length / factor)."""
    batch, time, width = x.shape
    steps = (time + factor - 1) // factor  # ceil without negative floor division, which the
    # ONNX export of a symbolic length turns into truncation
    valid = ~padding_mask(lengths, steps * factor)
    x = torch.nn.functional.pad(x, (0, 0, 0, steps * factor - time)) * valid[..., None].to(x.dtype)
    sums = x.view(batch, steps, factor, width).sum(2)
    counts = valid.view(batch, steps, factor).sum(2, keepdim=True).clamp_min(1)
    return sums / counts.to(x.dtype), (lengths + factor - 1) // factor
