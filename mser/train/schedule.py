"""How long a run trains and its learning-rate schedule, in optimiser steps."""
import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class TrainingLength:
    epochs: int
    patience: int
    steps_per_epoch: int

    @property
    def total_steps(self):
        return self.epochs * self.steps_per_epoch


def training_length(epochs, patience, min_steps, steps_per_epoch):
    """``epochs`` and ``patience``, both stretched by the same factor when ``epochs`` epochs of
    ``steps_per_epoch`` optimiser steps are fewer than ``min_steps``: a small corpus gets the
    optimiser steps a large one does, and patience the same share of the run."""
    planned = epochs * steps_per_epoch
    if planned >= min_steps or planned == 0:
        return TrainingLength(epochs, patience, steps_per_epoch)
    scale = min_steps / planned
    return TrainingLength(math.ceil(epochs * scale), math.ceil(patience * scale),
                          steps_per_epoch)


def lr_lambda(scheduler, warmup_steps, total_steps):
    """LambdaLR factor of optimiser step ``step`` (0-based): linear warm-up over
    ``warmup_steps``, then inverse-sqrt decay (``warmup``) or cosine decay to 0 at
    ``total_steps`` (``cosine``)."""
    warmup = max(1, warmup_steps)
    total = max(1, total_steps)

    def factor(step):
        step = step + 1
        if step <= warmup:
            return step / warmup
        if scheduler == "warmup":
            return math.sqrt(warmup / step)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor
