"""Stream conditions a model is trained, selected, decoded and scored under: every non-empty
subset of its streams, the full set first.

Names: the full set of two or more streams is ``both`` (two) or ``all`` (more), a single stream
``<stream>_only`` (``audio_only``, ``text_only``), any other subset its streams joined by ``+``
(``audio+video``). A single-stream model only has its own ``<stream>_only``.
"""
import re
from itertools import combinations

STREAM_NAME = re.compile(r"[a-z][a-z0-9]*")
FULL_SET_NAMES = ("both", "all")  # the full set of two streams, of more
CONDITION_NAME = re.compile(
    rf"{'|'.join(FULL_SET_NAMES)}|{STREAM_NAME.pattern}_only"
    rf"|{STREAM_NAME.pattern}(\+{STREAM_NAME.pattern})+")


def condition_name(subset, streams):
    """The name of ``subset`` (streams fed) of a model with ``streams``."""
    if len(subset) == 1:
        return f"{subset[0]}_only"
    if len(subset) == len(streams):
        return "both" if len(streams) == 2 else "all"
    return "+".join(subset)


def stream_conditions(streams):
    """{condition: the streams it feeds} of a model with ``streams``, largest subsets first."""
    streams = tuple(streams)
    return {condition_name(subset, streams): subset
            for size in range(len(streams), 0, -1) for subset in combinations(streams, size)}


def is_condition_name(name):
    """Whether ``name`` names a condition of some model (``both``, ``video_only``, ``a+b``)."""
    return CONDITION_NAME.fullmatch(name) is not None


def conditions_for(streams):
    """The conditions a model with ``streams`` can be decoded under, the full set first."""
    return list(stream_conditions(streams))


def condition_order(name):
    """Sort key of condition names in the order of :func:`conditions_for`: the full set, the
    other multi-stream subsets (larger first), the single streams; by name within each."""
    if name in FULL_SET_NAMES:
        return (0, 0, name)
    if name.endswith("_only"):
        return (2, 0, name)
    return (1, -name.count("+"), name)
