"""Modality conditions a model is trained, selected, decoded and scored under.

``both`` feeds every modality, ``audio_only`` / ``text_only`` mask the other one out. A
single-modality model only has its own condition.
"""
CONDITION_MODALITIES = {"both": ("audio", "text"), "audio_only": ("audio",), "text_only": ("text",)}
CONDITIONS = tuple(CONDITION_MODALITIES)


def conditions_for(model_modalities):
    """The conditions a model can be decoded under: every non-empty subset of its modalities."""
    return [name for name, mods in CONDITION_MODALITIES.items() if set(mods) <= set(model_modalities)]
