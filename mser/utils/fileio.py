"""Atomic file writing (a stage either leaves a complete file or none) and strict UTF-8 reading."""
import contextlib
import os
import tempfile


class EncodingError(ValueError):
    """A text file that is not UTF-8; the message names the file, line and byte."""


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """Open a temporary file next to ``path``; rename it over ``path`` only on success.

    The file gets the permissions of any new file (0666 minus the umask), not mkstemp's 0600,
    so a group can share an experiment dir."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def decode_utf8(data, source):
    """``data`` (bytes) as text; an :class:`EncodingError` naming ``source``, the line and the
    byte if it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise EncodingError(f"{source}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at offset "
                            f"{e.start}); the toolkit reads text as UTF-8: convert it, e.g. "
                            f"iconv -f latin1 -t utf-8") from None


def read_utf8_lines(path):
    """The lines of a UTF-8 text file (universal newlines, each without its line break)."""
    with open(path, "rb") as f:
        text = decode_utf8(f.read(), path)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines
