"""Matplotlib without a display, titles that fit their figure, and figures written atomically."""
import re

from mser.utils.fileio import atomic_open

# Characters of a title line per inch of figure width at the default title size (12 pt).
TITLE_CHARS_PER_INCH = 9


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


def fitted_title(fig, text, fontsize=12):
    """``text`` as the figure's title, wrapped onto as many lines as the figure's width needs
    (long experiment tags would otherwise run off its edges)."""
    width = max(20, int(fig.get_size_inches()[0] * TITLE_CHARS_PER_INCH * 12 / fontsize))
    return fig.suptitle("\n".join(wrap_at_separators(text, width)), fontsize=fontsize)


def wrap_at_separators(text, width):
    """Lines of at most ``width`` characters, broken after spaces and underscores (tags are
    words joined by underscores), inside a piece only when it alone is too long."""
    lines, line = [], ""
    for piece in re.findall(r"[^ _]*[ _]|[^ _]+$", text):
        while len(piece) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(piece[:width])
            piece = piece[width:]
        if len((line + piece).rstrip()) > width:
            lines.append(line)
            line = ""
        line += piece
    return [part.rstrip() for part in lines + [line] if part.strip()]
