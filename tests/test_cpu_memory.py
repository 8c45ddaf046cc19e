"""reuse_freed_memory: a freed large block stays with the process instead of going back to the system."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

# A fresh process allocates 64 MiB in 4 MiB blocks with malloc, touches them, frees them, and reports its
# resident memory (KiB) before, with and after; glibc's defaults map blocks of this size apart and unmap
# them when freed.
PROBE = """
import ctypes, json, sys
from risam.cpu_memory import reuse_freed_memory
def rss():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS")).split()[1])
took = reuse_freed_memory() if sys.argv[1] == "reuse" else None
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
before = rss()
blocks = [libc.malloc(4 << 20) for _ in range(16)]
for block in blocks:
    ctypes.memset(block, 1, 4 << 20)
held = rss()
for block in blocks:
    libc.free(block)
print(json.dumps({"took": took, "before": before, "held": held, "after": rss()}))
"""


def _probe(mode: str) -> dict[str, int]:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_blocks_stay_mapped_only_with_reuse_freed_memory():
    default, reuse = _probe("default"), _probe("reuse")
    assert reuse["took"] is True
    for run in (default, reuse):
        assert run["held"] - run["before"] > 60 * 1024  # the 64 MiB were touched
    assert default["held"] - default["after"] > 60 * 1024  # given back when freed
    assert reuse["held"] - reuse["after"] < 4 * 1024  # kept for the next allocations
