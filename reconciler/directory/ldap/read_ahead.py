"""Reading one page ahead: the server works on the next page while this process builds entries.

A paged search is a conversation: ask for a page, receive it, ask for the
next. Consumed in one thread, the server sits idle while the entries of each
page are turned into `DirectoryEntry` values, and this process sits idle while
the server gathers the next page. `read_ahead` moves the conversation into a
worker thread that fetches up to `depth` batches ahead, so the two overlap.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")
_POLL = 0.1  # seconds a blocked worker waits before checking whether the reader gave up


def read_ahead(items: Iterator[T], batch: int, depth: int = 2) -> Iterator[T]:
    """Yields what `items` yields, in order, produced by a worker thread up to `depth` batches ahead.

    An exception raised while producing is raised here, where the caller would
    have met it reading `items` directly. When the caller stops early (its own
    error, or it closes this generator), the worker is stopped and joined before
    this returns, so whatever `items` uses (a connection) is free again.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple) -> bool:
        while not stop.is_set():
            try:
                handoff.put(message, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        chunk: list[T] = []
        try:
            for item in items:
                chunk.append(item)
                if len(chunk) >= batch:
                    if not put(("items", chunk)):
                        return
                    chunk = []
            if put(("items", chunk)):
                put(("done", None))
        except BaseException as error:  # handed to the reader, which raises it as its own, after what came before
            if put(("items", chunk)):
                put(("error", error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="directory-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "items":
                yield from value
            elif kind == "done":
                return
            else:
                raise value
    finally:
        stop.set()
        worker.join()
