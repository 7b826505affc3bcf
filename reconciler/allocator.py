"""One setting of the C library's allocator, made once when the command starts (cli.main).

glibc serves a block below its mmap threshold from its heap, and raises that threshold each time it
frees a block it had mapped on its own (up to 32 MiB). A read pages through the directory in blocks of
a few hundred KiB (a page's bytes, the decoding helper's answer); once the threshold has risen past
them they come from the heap, between the small blocks the read keeps, and when they are freed the heap
cannot give the holes back. With the threshold fixed at 64 KiB such blocks are mapped on their own and
returned whole: at a million users the plan's peak RSS is about 50 MB lower (bench/README.md, "Memory
at a million users"), and the time the same.
"""
from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
THRESHOLD = 64 * 1024


def map_large_blocks() -> bool:
    """Fix glibc's mmap threshold; False (and nothing changed) under another C library."""
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, ValueError):  # no confstr name, no such library or function
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, THRESHOLD) == 1
