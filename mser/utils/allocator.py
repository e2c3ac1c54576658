"""Keep freed large tensors' memory in the process (glibc malloc) instead of unmapping it.

glibc serves every allocation above its mmap threshold (128 KiB, raised adaptively up to
32 MiB) with a fresh ``mmap``, which the kernel zero-fills page by page on first touch and
unmaps again on ``free``. A training step on stored features allocates and frees tensors of
tens of MB many times, so a quarter of its time went to page faults (``/usr/bin/time``: 2.6M
minor faults and 7.3 s of system time in 30 s on RAVDESS). Raising the thresholds once keeps
that memory in the heap for reuse: the same numbers, fewer faults
(``bench/bench_train_profile.py``). Not glibc (musl, macOS, Windows): nothing to do.
"""
import ctypes
import ctypes.util
import logging

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters of glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's maximum (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1 << 30  # free heap memory kept before it is returned to the system


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds for this process; False where it cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD,
                                                                      TRIM_THRESHOLD) == 1
    if not ok:
        logging.debug("mallopt refused the thresholds; the allocator is left as it is")
    return ok
