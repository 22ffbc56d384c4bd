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
import sqlite3
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from ..errors import EXIT_USAGE, EscalationError


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


class SQLiteStore:
    """An :class:`EngineStore` in one SQLite database file (``":memory:"``: one that ends with the process).

    Every event's writes are one transaction, committed by the engine after the event:
    a process killed between two events loses at most the event it was applying.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.db: sqlite3.Connection | None = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
            self.db.execute("PRAGMA journal_mode=WAL" if path != ":memory:" else "PRAGMA journal_mode=MEMORY")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS conversations (conversation TEXT PRIMARY KEY, ord INTEGER, customer TEXT, snapshot TEXT) WITHOUT ROWID"
            )
            self.db.execute("CREATE INDEX IF NOT EXISTS conversations_ord ON conversations (ord)")
            self.db.execute("CREATE TABLE IF NOT EXISTS customers (customer TEXT PRIMARY KEY, snapshot TEXT) WITHOUT ROWID")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (k INTEGER PRIMARY KEY CHECK (k = 1), value TEXT)")
            self.db.commit()
        except sqlite3.Error as err:
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

    def commit(self) -> None:
        self._db().commit()

    def close(self) -> None:
        if self.db is not None:
            self.db.commit()
            self.db.close()
            self.db = None
