"""allocator.map_large_blocks: glibc's mmap threshold fixed at 64 KiB, so that the blocks a read frees by the
hundred (pages, the helper's answers) are given back whole instead of leaving holes in the heap. Checked by
glibc's own count of mapped blocks (mallinfo2), in a fresh interpreter each time."""
import gc
import os
import subprocess
import sys
import textwrap

import pytest

from reconciler import allocator

glibc = pytest.mark.skipif(not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"), reason="glibc only")

# After a 1 MiB block (mapped on its own) is freed, glibc raises its threshold past it: the next 200 KiB
# block comes from the heap. Is that block mapped on its own (the count of mapped blocks goes up)?
PROBE = textwrap.dedent("""
    import ctypes, sys
    libc = ctypes.CDLL(None)
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc.mallinfo2.restype = Info
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    if sys.argv[1] == "fixed":
        from reconciler import allocator
        assert allocator.map_large_blocks()
    libc.free(libc.malloc(1 << 20))
    before = libc.mallinfo2().hblks
    block = libc.malloc(200 * 1024)
    print(libc.mallinfo2().hblks - before)
    libc.free(block)
""")


def mapped_on_its_own(mode: str) -> bool:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(allocator.__file__)))
    return out.stdout.strip() == "1"


@glibc
def test_a_block_of_200_kib_is_mapped_on_its_own_once_the_threshold_is_fixed():
    assert mapped_on_its_own("fixed")


@glibc
def test_without_it_glibc_serves_that_block_from_its_heap():
    assert not mapped_on_its_own("default")  # the behaviour map_large_blocks exists to change


def test_under_another_c_library_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(allocator.os, "confstr", lambda name: "musl")
    called = []
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: called.append(a))
    assert allocator.map_large_blocks() is False and called == []


def test_every_command_starts_with_it(monkeypatch):
    from reconciler import cli

    calls = []
    monkeypatch.setattr(cli.allocator, "map_large_blocks", lambda: calls.append(True) or True)
    try:
        with pytest.raises(SystemExit):
            cli.main(["--version"])
    finally:
        gc.enable()  # cli.main disabled the collector for this test process too
    assert calls == [True]
