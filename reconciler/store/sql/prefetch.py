"""A plan's store read in a helper process, while this process builds the desired state.

After the directory read this process builds the desired state on one core, pure Python, and the other
core is idle: the read of the store (rows fetched, made into users, the content fingerprinted) does not
depend on the desired state, so a helper process does it then. What comes back is the rows as the
database gave them, a thousand at a time, and the fingerprint of the content they make; this process makes
the users of them (`SqlStore.state_of_rows`, sharing the desired people's equal values, which only it has)
and takes the fingerprint rather than computing it again. Measured in bench/README.md ("store read").

The helper is `python -m reconciler.store.sql.prefetch`, started with the directory read so that its
imports are done by the time it is needed. It is then given the policy's store settings (pickled: a
secret in them is a reference to an environment variable, never its value) on its standard input; it
answers on its standard output in frames of an 8-byte length and the `marshal` of one value: the
memberships (user id -> team keys), `(teams, remembers, edited, fingerprint, chunks)`, then `chunks` lists
of users rows; or only `None` when there is no store yet. It reads the store as `SqlStore.read` does, in
one read transaction.

It changes nothing a plan reads. Whenever the helper cannot start, fails (a damaged row, a database it
cannot reach) or dies, this process reads the store itself, as it always did, and any error is that read's
own. The helper is stopped and waited for whatever happens (`close`).
"""
from __future__ import annotations

import marshal
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from ...model import KnownUser, StoreState
from ...policy.model import StoreConfig
from .store import MEMBERSHIPS_SQL, USERS_SQL, SqlStore, empty_state, memberships_by_user

_SIZE = 8  # bytes of a frame's length
CHUNK = 1000  # users rows per frame


class Prefetch:
    """The read of one SQL store in a helper process: started (`Prefetch(store)`: the helper imports what it
    needs while the directories are read, then waits), told to read (`begin()`, once the directories are
    read), and taken with `state(known)`; `close()` stops it if it is not taken."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._process: subprocess.Popen | None = None
        # the helper runs this very reconciler, wherever it was imported from (a checkout, a wheel)
        root = str(Path(__file__).resolve().parents[3])  # the folder holding the reconciler package
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, close_fds=True, env=environment,
            )
        except OSError:
            self._process = None  # read here, at `state`

    def begin(self) -> None:
        """The helper reads the store now (once: again does nothing)."""
        process = self._process
        try:
            if process is not None and not process.stdin.closed:
                process.stdin.write(pickle.dumps(self.store.config))
                process.stdin.close()
        except OSError:
            self.close()

    def state(self, known: Mapping[str, KnownUser] | None = None) -> StoreState:
        """The store's state as `store.read(known)` gives it: from the helper's rows, or read here when the
        helper gave none."""
        self.begin()  # a helper never told to read would never answer
        store, process = self.store, self._process
        try:
            if process is not None:
                memberships = _frame(process.stdout)
                if memberships is None:  # no store yet
                    return empty_state()
                try:
                    teams, remembers, edited, fingerprint, chunks = _frame(process.stdout)
                except (TypeError, ValueError):  # not the header's five values
                    raise NoAnswer("the store helper's answer is not a header") from None
                rows = (row for _ in range(chunks) for row in _frame(process.stdout))
                return store.state_of_rows(memberships, rows, lambda: (teams, remembers, edited), known, fingerprint)
        except (OSError, NoAnswer):
            pass  # no helper, or one that failed or died: read here
        finally:
            self.close()
        return store.read(known=known)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:  # a helper already gone: nothing to flush
                pass
        if process.poll() is None:
            process.kill()  # an answer nobody takes, or a helper still working for a plan that stopped
        process.wait()


class NoAnswer(Exception):
    """The helper's answer ended or is not one (it failed, or died): the store is read here instead."""


def _frame(stream: IO[bytes]):
    header = stream.read(_SIZE)
    size = int.from_bytes(header, "big")
    data = stream.read(size) if len(header) == _SIZE else b""
    if len(header) != _SIZE or len(data) != size:
        raise NoAnswer("the store helper stopped answering")
    try:
        return marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        raise NoAnswer("the store helper's answer is not marshal data") from None


def _answer(config: StoreConfig) -> Iterator[bytes]:
    """The helper's frames for the store of `config` (`open_store`'s, which must be a SQL store)."""
    from .. import open_store

    store = open_store(config)
    if not isinstance(store, SqlStore):
        raise TypeError(f"{type(store).__name__} is not a SQL store")
    try:
        with store._reading() as tx:
            if tx is None:
                yield marshal.dumps(None)
                return
            memberships = memberships_by_user(tx.execute(MEMBERSHIPS_SQL))
            frames = [marshal.dumps(dict(memberships))]  # as read: the state empties these lists
            chunks: list[bytes] = []
            chunk: list = []
            rest: list = []

            def teed() -> Iterator:
                """The users rows, each on its way to the state and to a frame."""
                for row in tx.execute(USERS_SQL):
                    chunk.append(tuple(row))
                    if len(chunk) == CHUNK:
                        chunks.append(marshal.dumps(chunk))
                        chunk.clear()
                    yield row
                if chunk:
                    chunks.append(marshal.dumps(chunk))

            fingerprint = store.state_of_rows(memberships, teed(),
                                              lambda: rest.append(store.rest_of_read(tx)) or rest[0]).fingerprint
        teams, remembers, edited = rest[0]
        # nothing is written before everything is read: a full pipe would hold the helper up until the plan
        # takes the answer, which is after the desired state, the time the helper has
        frames.append(marshal.dumps((list(map(tuple, teams)), remembers, list(map(tuple, edited)), fingerprint,
                                     len(chunks))))
        yield from frames
        yield from chunks
    finally:
        store.close()


def main() -> None:
    import gc

    gc.disable()  # many long-lived objects and no cycles, as in the command (cli.main)
    config = pickle.load(sys.stdin.buffer)  # from the plan's own process; end of input: it stopped, so do we
    out = sys.stdout.buffer
    for data in _answer(config):
        out.write(len(data).to_bytes(_SIZE, "big"))
        out.write(data)
    out.flush()
    os._exit(0)  # everything is written: freeing what was read would only keep the plan waiting to reap us


if __name__ == "__main__":
    main()
