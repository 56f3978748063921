"""glibc's mmap threshold fixed for extraction (evalbench.utils.memory); its effect is `evalbench bench scaling`'s."""

from __future__ import annotations

import subprocess
import sys

import pytest

from evalbench.utils import memory

SCRIPT = """
import ctypes, sys
from evalbench.utils.memory import fix_mmap_threshold
assert fix_mmap_threshold() and fix_mmap_threshold()  # once per process, then remembered
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
# free an 8 MiB block (with glibc's dynamic threshold, this raises it to 8 MiB), then churn ~1 MiB blocks of
# growing size, each followed by a small long-lived block: on the heap every freed block leaves a hole the next,
# larger one does not fit (extraction's clips and batches of varying shapes); mapped blocks are unmapped on free
big = libc.malloc(8 << 20); ctypes.memset(big, 1, 8 << 20); libc.free(big)
before, keep = rss(), []
for i in range(200):
    size = (1 << 20) + i * 4096
    block = libc.malloc(size); ctypes.memset(block, 1, size)
    keep.append(libc.malloc(64)); libc.free(block)
print(rss() - before)
"""


@pytest.mark.skipif(memory._libc() is None, reason="glibc only")
def test_freed_clip_sized_buffers_go_back_to_the_system() -> None:
    grown_kib = int(subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout)
    assert grown_kib < 1024  # 200 MiB churned: fixed, 12 KiB here; the dynamic threshold left holes, 3 MiB here
