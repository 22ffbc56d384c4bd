"""A :class:`~escalation.state.store.StateStore` on disk: a private SQLite database that nobody else can open.

``sqlite3.connect("")`` opens a temporary database that SQLite deletes when it is closed (on
POSIX the file is unlinked as soon as it is opened), so nothing is left behind even if the
process is killed. A parked conversation's state is held in the compact form of
:func:`escalation.runtime.codec.pack_state`, close records as JSON: no pickle.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import orjson

from ..errors import EXIT_USAGE, EscalationError
from ..runtime.codec import pack_state, unpack_state
from .store import Parked


class SpillError(EscalationError):
    """The on-disk store of ended conversations failed (a full disk, an unwritable temporary folder)."""

    exit_code = EXIT_USAGE


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _spill_error(err: BaseException) -> SpillError:
    where = os.environ.get("SQLITE_TMPDIR") or tempfile.gettempdir()
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return SpillError(f"the replay could not keep its ended conversations on disk in {where}: {reason}")


def _guarded(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """A :class:`SpillStore` method whose SQLite or OS errors become :class:`SpillError`."""

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, OSError) as err:
            raise _spill_error(err) from None

    return guarded


def _guarded_iter(method: Callable[_P, Iterator[_R]]) -> Callable[_P, Iterator[_R]]:
    """A :class:`SpillStore` generator whose SQLite or OS errors, while it is iterated, become :class:`SpillError`."""

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> Iterator[_R]:
        try:
            yield from method(*args, **kwargs)
        except (sqlite3.Error, OSError) as err:
            raise _spill_error(err) from None

    return guarded


def _entry(order: int, next_n: int, last_time: int, owing: int, blob: bytes | None) -> Parked:
    return Parked(order, next_n, last_time, bool(owing), None if blob is None else unpack_state(blob))


class SpillStore:
    """Parked and retired conversations, parked customers (their snapshots as JSON), and early close records, in a private temporary SQLite database."""

    @_guarded
    def __init__(self) -> None:
        self.db = sqlite3.connect("", check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        # parked: 1 while the state resumes as it was (``state`` holds it); 0 once retired (by --idle-horizon).
        # owing: 1 when a parked conversation has pending obligations (it has a close record to come).
        self.db.execute(
            "CREATE TABLE away (conversation TEXT PRIMARY KEY, parked INTEGER, owing INTEGER, ord INTEGER, last_time INTEGER, "
            "next_n INTEGER, state BLOB) WITHOUT ROWID"
        )
        self.db.execute("CREATE INDEX away_idle ON away (parked, last_time)")
        self.db.execute("CREATE INDEX away_owing ON away (parked, owing, ord)")
        self.db.execute("CREATE TABLE closes (ord INTEGER, k INTEGER, record BLOB, PRIMARY KEY (ord, k)) WITHOUT ROWID")
        self.db.execute("CREATE TABLE customers (customer TEXT PRIMARY KEY, snapshot BLOB) WITHOUT ROWID")
        self.closes = 0

    @_guarded
    def put(self, conversation: str, entry: Parked) -> None:
        state = entry.state
        blob = None if state is None else pack_state(state)
        row = (conversation, int(state is not None), int(entry.owing), entry.order, entry.last_time, entry.next_n, blob)
        self.db.execute("INSERT OR REPLACE INTO away VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    @_guarded
    def get(self, conversation: str) -> Parked | None:
        row = self.db.execute("SELECT ord, next_n, last_time, owing, state FROM away WHERE conversation = ?", (conversation,)).fetchone()
        return None if row is None else _entry(*row)

    @_guarded
    def delete(self, conversation: str) -> None:
        self.db.execute("DELETE FROM away WHERE conversation = ?", (conversation,))

    @_guarded
    def owing_idle(self, cutoff: int) -> list[tuple[str, Parked]]:
        rows = self.db.execute(
            "SELECT conversation, ord, next_n, last_time, owing, state FROM away WHERE parked = 1 AND owing = 1 AND last_time < ?", (cutoff,)
        )
        return [(c, _entry(*rest)) for c, *rest in rows.fetchall()]

    @_guarded
    def retire_idle(self, cutoff: int) -> int:
        return self.db.execute("UPDATE away SET parked = 0, owing = 0, state = NULL WHERE parked = 1 AND last_time < ?", (cutoff,)).rowcount

    @_guarded_iter
    def owing(self) -> Iterator[tuple[str, Parked]]:
        rows = self.db.execute("SELECT conversation, ord, next_n, last_time, owing, state FROM away WHERE parked = 1 AND owing = 1 ORDER BY ord")
        for c, *rest in rows:
            yield c, _entry(*rest)

    @_guarded
    def put_customer(self, customer: str, snapshot: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO customers VALUES (?, ?)", (customer, orjson.dumps(snapshot)))

    @_guarded
    def get_customer(self, customer: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT snapshot FROM customers WHERE customer = ?", (customer,)).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    @_guarded
    def delete_customer(self, customer: str) -> None:
        self.db.execute("DELETE FROM customers WHERE customer = ?", (customer,))

    @_guarded
    def hold_close(self, order: int, record: dict[str, Any]) -> None:
        self.db.execute("INSERT INTO closes VALUES (?, ?, ?)", (order, self.closes, orjson.dumps(record)))
        self.closes += 1

    @_guarded_iter
    def held_closes(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for order, _, blob in self.db.execute("SELECT ord, k, record FROM closes ORDER BY ord, k"):
            yield order, orjson.loads(blob)

    @_guarded
    def close(self) -> None:
        self.db.close()
