"""read_ahead: the same items in the same order, errors where the reader meets them, and a worker
that is stopped (and its source closed) when the reader gives up early."""
from __future__ import annotations

import threading

import pytest

from reconciler.directory.ldap.read_ahead import read_ahead
from reconciler.errors import DirectoryError


def test_items_arrive_in_order_across_batches():
    assert list(read_ahead(iter(range(2503)), batch=100)) == list(range(2503))


def test_an_empty_source_yields_nothing():
    assert list(read_ahead(iter([]), batch=10)) == []


def test_a_producer_error_is_raised_after_the_items_before_it():
    def source():
        yield from range(15)
        raise DirectoryError("directory corp: incomplete read")

    seen = []
    with pytest.raises(DirectoryError, match="incomplete read"):
        for item in read_ahead(source(), batch=4):
            seen.append(item)
    assert seen == list(range(15))


def test_stopping_early_stops_the_worker_and_closes_the_source():
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    reader = read_ahead(endless(), batch=10, depth=1)
    assert [next(reader) for _ in range(25)] == list(range(25))
    reader.close()
    assert closed.is_set()
    assert not any(t.name == "directory-read-ahead" for t in threading.enumerate())
