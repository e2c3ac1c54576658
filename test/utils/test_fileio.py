"""Atomic writing: permissions as any new file; strict UTF-8 reading naming file and line."""
import os
import stat

import pytest

from mser.utils.fileio import EncodingError, atomic_open, atomic_write_text, read_utf8_lines


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_files_get_their_mode_from_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x\n")
        with atomic_open(tmp_path / "b.bin", "wb") as f:
            f.write(b"x")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x\n")
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE(os.stat(tmp_path / name).st_mode)
             for name in ("a.txt", "b.bin", "plain.txt")}
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)


def test_read_utf8_lines(tmp_path):
    path = tmp_path / "t"
    path.write_bytes(b"a b\r\nc\rd\n\n")
    assert read_utf8_lines(path) == ["a b", "c", "d", ""]
    path.write_bytes(b"ok\nstill ok\nna\xefve\n")
    with pytest.raises(EncodingError, match=rf"{path}:3: not UTF-8 \(byte 0xef at offset 14\)"):
        read_utf8_lines(path)
