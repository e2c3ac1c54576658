"""glibc's thresholds raised by keep_freed_memory: freed batch-sized tensors' pages are reused
instead of being unmapped and faulted in again."""
import platform
import subprocess
import sys

import pytest

# Batches of stored features of a few shapes (as length bucketing gives), ~20 MB each.
LOOP = """
import resource, sys, torch
from mser.utils.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
batches = [torch.randn(b, t, 3072) for b, t in ((45, 44), (36, 55), (44, 45), (38, 53), (39, 52))]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for step in range(40):
    x = batches[step % len(batches)]
    squared = x * x
    total = (squared + x).sum(1)
    del squared
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc's mallopt")
def test_freed_tensor_memory_is_reused_instead_of_faulted_in_again():
    faults = {mode: int(subprocess.run([sys.executable, "-c", LOOP, mode], check=True,
                                       capture_output=True, text=True).stdout)
              for mode in ("default", "keep")}
    assert faults["keep"] * 2 < faults["default"], faults
