"""Where the library's :class:`~escalation.api.Engine` keeps its state: the store interface, and its SQLite implementation.

An engine with a store writes each conversation's state through to it after every
event (and each customer's, once customer history lands), so a process that stops and
opens the same store again carries on where the last one stopped. What is stored is the
validated snapshot form (:meth:`Interaction.snapshot`, JSON), checked again when it is
read back: a store is as untrusted as any snapshot. The interface is
:class:`EngineStore`; :class:`SQLiteStore` is the embedded one, and a server store
(PostgreSQL) implements the same methods.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from typing import IO, Any, NamedTuple, Protocol

from ..errors import EXIT_USAGE, EscalationError
from .store import Position

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no exclusive hold
    fcntl = None  # type: ignore[assignment]


class StoreError(EscalationError):
    """An engine's store could not be opened, read or written (or belongs to another policy)."""

    exit_code = EXIT_USAGE


class StoredConversation(NamedTuple):
    """One conversation as a store holds it."""

    order: int  # the seq of its first accepted event: close records are in this order
    snapshot: dict[str, Any]  # what Session.snapshot() writes for it
    customer: str | None = None  # the customer it is bound to (language.md §9), or None


class EngineStore(Protocol):
    """The state of an engine's conversations and customers, and its counters (``meta``), by key."""

    def get_conversation(self, conversation: str) -> StoredConversation | None:
        """What the store holds for ``conversation``, or None."""
        ...

    def put_conversation(self, conversation: str, entry: StoredConversation) -> None:
        """Hold ``entry`` for ``conversation`` (replacing what was held)."""
        ...

    def conversations(self) -> Iterator[tuple[str, StoredConversation]]:
        """Every conversation held, in ``order``."""
        ...

    def get_customer(self, customer: str) -> dict[str, Any] | None:
        """What is held for a customer (``latest``: its latest accepted time; later its history state), or None."""
        ...

    def put_customer(self, customer: str, snapshot: dict[str, Any]) -> None:
        """Hold a customer's history state."""
        ...

    def customers(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every customer held, by id."""
        ...

    def get_meta(self) -> dict[str, Any] | None:
        """The engine's own counters (policy digest, seq, totals), or None for a new store."""
        ...

    def put_meta(self, meta: dict[str, Any]) -> None:
        """Replace the engine's counters."""
        ...

    def commit(self) -> None:
        """Make everything put since the last commit durable, together (after each event)."""
        ...

    def close(self) -> None:
        """Release the store; safe to call again."""
        ...


def _load(text: str) -> Any:
    return json.loads(text)


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hold(path: str) -> IO[str]:
    """An exclusive hold on ``path``'s lock file (``PATH.lock``) for this process; StoreError when another process has it."""
    lock_path = path + ".lock"
    try:
        fh = open(lock_path, "a+")  # noqa: SIM115 - held open for the store's life
    except OSError as err:
        raise StoreError(f"the state store {path} could not be opened: cannot create {lock_path}: {err.strerror or err}") from None
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StoreError(
                f"the state store {path} is held by process {holder}: one process at a time serves a SQLite store "
                "(stop it, or give another --state)"
            ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


class SQLiteStore:
    """An :class:`EngineStore` (and a :class:`~escalation.state.ServiceStore`) in one SQLite database file (``":memory:"``:
    one that ends with the process).

    Every event's writes are one transaction, committed by the engine after the event (or
    by the service after a group of events): a process killed between two commits loses at
    most what it was applying. The file is in WAL mode with ``synchronous=FULL``, so a
    commit is on disk when it returns. With ``exclusive``, this process holds the file
    (through ``PATH.lock``) until :meth:`close`: a second one gets StoreError.
    """

    def __init__(self, path: str, *, exclusive: bool = False) -> None:
        self.path = path
        self.hold: IO[str] | None = _hold(path) if exclusive and path != ":memory:" else None
        try:
            self.db: sqlite3.Connection | None = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
            self.db.execute("PRAGMA journal_mode=WAL" if path != ":memory:" else "PRAGMA journal_mode=MEMORY")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS conversations (conversation TEXT PRIMARY KEY, ord INTEGER, customer TEXT, snapshot TEXT) WITHOUT ROWID"
            )
            self.db.execute("CREATE INDEX IF NOT EXISTS conversations_ord ON conversations (ord)")
            self.db.execute("CREATE TABLE IF NOT EXISTS customers (customer TEXT PRIMARY KEY, snapshot TEXT) WITHOUT ROWID")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (k INTEGER PRIMARY KEY CHECK (k = 1), value TEXT)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS answers (conversation TEXT, event_id TEXT, line BLOB, PRIMARY KEY (conversation, event_id)) WITHOUT ROWID"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS position (k INTEGER PRIMARY KEY CHECK (k = 1), segment INTEGER, records INTEGER)")
            self.db.commit()
        except sqlite3.Error as err:
            self._release()
            raise StoreError(f"the engine store {path} could not be opened: {err}") from None

    def _db(self) -> sqlite3.Connection:
        if self.db is None:
            raise StoreError(f"the engine store {self.path} is closed")
        return self.db

    def get_conversation(self, conversation: str) -> StoredConversation | None:
        row = self._db().execute("SELECT ord, snapshot, customer FROM conversations WHERE conversation = ?", (conversation,)).fetchone()
        return None if row is None else StoredConversation(row[0], _load(row[1]), row[2])

    def put_conversation(self, conversation: str, entry: StoredConversation) -> None:
        self._db().execute(
            "INSERT OR REPLACE INTO conversations VALUES (?, ?, ?, ?)", (conversation, entry.order, entry.customer, _dump(entry.snapshot))
        )

    def conversations(self) -> Iterator[tuple[str, StoredConversation]]:
        rows = self._db().execute("SELECT conversation, ord, snapshot, customer FROM conversations ORDER BY ord").fetchall()
        for conversation, order, snap, customer in rows:
            yield conversation, StoredConversation(order, _load(snap), customer)

    def get_customer(self, customer: str) -> dict[str, Any] | None:
        row = self._db().execute("SELECT snapshot FROM customers WHERE customer = ?", (customer,)).fetchone()
        return None if row is None else dict(_load(row[0]))

    def put_customer(self, customer: str, snapshot: dict[str, Any]) -> None:
        self._db().execute("INSERT OR REPLACE INTO customers VALUES (?, ?)", (customer, _dump(snapshot)))

    def customers(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for customer, snap in self._db().execute("SELECT customer, snapshot FROM customers ORDER BY customer").fetchall():
            yield customer, dict(_load(snap))

    def get_meta(self) -> dict[str, Any] | None:
        row = self._db().execute("SELECT value FROM meta WHERE k = 1").fetchone()
        return None if row is None else dict(_load(row[0]))

    def put_meta(self, meta: dict[str, Any]) -> None:
        self._db().execute("INSERT OR REPLACE INTO meta VALUES (1, ?)", (_dump(meta),))

    # -- what the decision service keeps besides (ServiceStore)
    def get_answer(self, conversation: str, event_id: str) -> bytes | None:
        row = self._db().execute("SELECT line FROM answers WHERE conversation = ? AND event_id = ?", (conversation, event_id)).fetchone()
        return None if row is None else bytes(row[0])

    def put_answer(self, conversation: str, event_id: str, line: bytes) -> None:
        self._db().execute("INSERT OR IGNORE INTO answers VALUES (?, ?, ?)", (conversation, event_id, line))

    def get_position(self) -> Position | None:
        row = self._db().execute("SELECT segment, records FROM position WHERE k = 1").fetchone()
        return None if row is None else Position(row[0], row[1])

    def put_position(self, position: Position) -> None:
        self._db().execute("INSERT OR REPLACE INTO position VALUES (1, ?, ?)", (position.segment, position.records))

    def reset(self, *, answers: bool) -> None:
        db = self._db()
        for table in ("conversations", "customers", "meta", "position") + (("answers",) if answers else ()):
            db.execute(f"DELETE FROM {table}")

    def rollback(self) -> None:
        """Drop everything put since the last commit."""
        self._db().rollback()

    def commit(self) -> None:
        try:
            self._db().commit()
        except sqlite3.Error as err:
            raise StoreError(f"the engine store {self.path} could not commit: {err}") from None

    def _release(self) -> None:
        if self.hold is not None:
            self.hold.close()  # closing the file releases the hold
            self.hold = None

    def close(self) -> None:
        if self.db is not None:
            self.db.commit()
            self.db.close()
            self.db = None
        self._release()
