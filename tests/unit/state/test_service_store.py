"""The SQLite store's service side: answers, the position, reset, and one process holding a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalation.state import Position, SQLiteStore, StoreError


def test_answers_and_position_survive_a_reopen_and_reset_forgets_them(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path, exclusive=True)
    store.put_answer("c", "1", b'{"kind":"decision"}')
    store.put_answer("c", "1", b"second write loses")
    store.put_position(Position(3, 17))
    store.commit()
    store.close()
    again = SQLiteStore(path, exclusive=True)
    assert again.get_answer("c", "1") == b'{"kind":"decision"}' and again.get_answer("c", '"1"') is None
    assert again.get_position() == Position(3, 17)
    again.reset(answers=False)
    assert again.get_position() is None and again.get_answer("c", "1") is not None
    again.reset(answers=True)
    assert again.get_answer("c", "1") is None
    again.rollback()
    assert again.get_position() == Position(3, 17)  # reset is part of the open transaction
    again.close()


def test_a_second_holder_is_refused_with_a_sentence(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    first = SQLiteStore(path, exclusive=True)
    with pytest.raises(StoreError, match="held by process"):
        SQLiteStore(path, exclusive=True)
    first.close()
    SQLiteStore(path, exclusive=True).close()  # released at close
