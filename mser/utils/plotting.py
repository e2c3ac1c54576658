"""Matplotlib without a display, and figures written atomically."""
from mser.utils.fileio import atomic_open


def pyplot():
    """matplotlib.pyplot on the Agg backend (works on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=110):
    """Write ``fig`` to ``path`` as PNG (temp file + rename) and close it."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    pyplot().close(fig)
