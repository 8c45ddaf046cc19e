"""Keep freed memory for reuse, so that large temporary tensors do not cost fresh pages each time.

glibc's malloc returns blocks above its mmap threshold (128 KiB, rising with use to at most 32 MiB) to
the system when they are freed, and gives the top of its heap back above a trim threshold. A SAM
encoder's pass allocates and frees tensors of 10-40 MB in every block, so each of them costs fresh
pages, and the kernel zeroes each page at its first touch: ViT-B at 1024 x 1024 in bfloat16 on 2 AMD
EPYC cores with AVX512-BF16, 4.6 s against 3.9 s per image with :func:`reuse_freed_memory`
(``python -m benchmarks.encoder_cpu``). The cost is that the process keeps up to 1 GiB of freed heap
mapped instead of handing it back, below its peak.

The ``risam`` command calls :func:`reuse_freed_memory` at start; a Python program may call it once.
"""

from __future__ import annotations

import ctypes
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest on 64-bit systems
TRIM_THRESHOLD = 2**30


def reuse_freed_memory() -> bool:
    """Raise glibc's mmap threshold to 32 MiB and its trim threshold to 1 GiB for this process.

    Returns whether the settings took effect: False where the C library is not glibc (musl, macOS,
    Windows), whose allocator is left as it is.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallopt"):
        return False
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    trim_set = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(mmap_set and trim_set)
