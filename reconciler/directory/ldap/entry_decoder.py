"""The pages of a big read decoded in a helper process, on the machine's other core.

Decoding 100,000 entries' BER bytes into values is about a second of pure
Python, a quarter of the read, and this process holds the GIL for it while it
also builds the entries of the pages before. The server does not keep a second
core busy (slapd spends about 0.6 s serving the whole read), so a helper
process (`python -I -S ber.py`: standard library only, started in a few
milliseconds, with an empty environment) decodes each page while this process
asks for the next one and builds the last one's entries. It answers in
`marshal` form, which this process reads back at C speed (a quarter of the
decoding's time). Measured in bench/README.md ("Decoding on the other core").

The helper changes nothing a read returns: it runs the same decoder, and an
entry it leaves undecoded (controls, text that is not UTF-8) is decoded here
by ldap3 as before. A small read (under `START_AFTER` entries) never starts
it. If it cannot be started, or fails or dies at any point, the page it held
is decoded here and so is every page after: never an error, never a
different read. It is stopped by its own process id when the search ends,
whether the search finished, failed or was abandoned.
"""
from __future__ import annotations

import marshal
import os
import subprocess
import sys
from typing import Callable

from ldap3.utils.asn1 import decode_message_fast

from . import ber
from .paged import RawEntry

_SIZE = 8
_LOADER_VARIABLES = ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "SYSTEMROOT")  # what a Python may need to start at all


class EntryDecoder:
    """Decodes the undecoded search entries of one paged search, page by page, in order.

    `submit(messages)` hands over one page's entries (message bytes) and returns a function that gives
    them as `RawEntry` values; the caller calls it after asking the server for the next page, so the
    helper decodes while the server answers. At most one page is with the helper at a time.
    """

    START_AFTER = 2000  # entries decoded here before the helper is worth starting

    def __init__(self, strategy) -> None:
        self._strategy = strategy
        self._process: subprocess.Popen | None = None
        self._failed = False  # the helper could not start or broke: decode everything here
        self._decoded_here = 0

    @property
    def helper_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def submit(self, messages: list[bytes]) -> Callable[[], list[RawEntry]]:
        if self._failed or self._decoded_here + len(messages) <= self.START_AFTER:
            self._decoded_here += len(messages)
            return lambda: self._decode_here(messages)
        if self._process is None and not self._start():
            return lambda: self._decode_here(messages)
        process = self._process
        try:
            data = b"".join(messages)
            process.stdin.write(len(data).to_bytes(_SIZE, "big"))
            process.stdin.write(data)
            process.stdin.flush()
        except (OSError, ValueError):
            self._give_up()
            return lambda: self._decode_here(messages)
        return lambda: self._answer(messages)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _stop(process)

    def _start(self) -> bool:
        environment = {name: os.environ[name] for name in _LOADER_VARIABLES if name in os.environ}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", ber.__file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, env=environment, close_fds=True,
            )
        except OSError:
            self._failed = True
            return False
        return True

    def _give_up(self) -> None:
        self._failed = True
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            _stop(process)

    def _answer(self, messages: list[bytes]) -> list[RawEntry]:
        process = self._process
        try:
            header = _read_exactly(process.stdout, _SIZE)
            answer = marshal.loads(_read_exactly(process.stdout, int.from_bytes(header, "big")))
            if type(answer) is not list or len(answer) != len(messages):
                raise ValueError("the helper's answer does not match the page")
        except (OSError, ValueError, EOFError, TypeError, AttributeError):
            self._give_up()
            return self._decode_here(messages)
        return self._entries(answer, messages)

    def _decode_here(self, messages: list[bytes]) -> list[RawEntry]:
        return self._entries(ber.decode_messages(messages), messages)

    def _entries(self, decoded: list, messages: list[bytes]) -> list[RawEntry]:
        """The page's entries: as the decoder found them, or by ldap3 where it left one alone."""
        strategy = self._strategy
        return [RawEntry(*entry) if entry is not None else _by_ldap3(strategy, raw)
                for entry, raw in zip(decoded, messages)]


def _stop(process: subprocess.Popen) -> None:
    """Ends the helper and waits for it: end of input ends its loop, and a helper still writing an answer
    nobody will take (an abandoned page) gets a broken pipe rather than waiting for a reader."""
    for stream in (process.stdin, process.stdout):
        try:
            stream.close()
        except OSError:  # a helper already gone: what was left unwritten does not matter
            pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _by_ldap3(strategy, raw: bytes) -> RawEntry:
    """An entry the lean decoder leaves alone, decoded by ldap3 as the connection would have."""
    response = strategy.decode_response_fast(decode_message_fast(raw))
    return RawEntry(response["dn"], response["raw_attributes"])


def _read_exactly(stream, size: int) -> bytes:
    data = stream.read(size)  # a buffered pipe: reads until `size` bytes or end of input
    if data is None or len(data) != size:
        raise EOFError("the helper stopped answering")
    return data
