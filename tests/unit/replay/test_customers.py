"""Customers in a replay (language.md §9, interfaces.md §1–2): admission, binding, parking, and --jobs byte identity.

Until l2-eval's ``CustomerState`` and ``Interaction.bind`` are merged, a policy that
reads customer history is simulated: ``reads_customer_history`` is forced on for the
replay modules and a stand-in state class (which evaluates nothing) is given to the
runtime. Admission, routing, parking and the bytes of the log do not depend on what the
customer state computes.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation import check_source, runtime
from escalation.audit import records, totals, verify, verify_stream
from escalation.compile.lower import compile_policy
from escalation.errors import EventError
from escalation.replay import Replayer, core, open_inputs, parallel, replay_records, write_log
from escalation.replay.parallel import replay_parallel
from escalation.replay.partition import admission_pass, key_of, owner_key
from escalation.runtime import Admission, Interaction, record_customer
from escalation.state import MemoryStore
from helpers.log_compare import same_log
from helpers.policy_strategies import event_streams, mentioned

POLICY = (Path(__file__).resolve().parents[3] / "policies" / "three_strikes.esc").read_text(encoding="utf-8")
_CHECKED = check_source(POLICY).checked
assert _CHECKED is not None
_COMPILED = compile_policy(_CHECKED, POLICY.encode("utf-8"))
VOCABULARY = _COMPILED.vocabulary


class StandIn:
    """A customer state that evaluates nothing: what the replay needs of ``CustomerState`` (create, snapshot, resume)."""

    made = 0

    def __init__(self, policy: Any, customer: str) -> None:
        self.customer = customer
        StandIn.made += 1

    def snapshot(self) -> dict[str, Any]:
        return {"customer": self.customer}

    @classmethod
    def resume(cls, policy: Any, snap: dict[str, Any]) -> StandIn:
        return cls(policy, snap["customer"])


@pytest.fixture
def reads_history(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Replay as if the policy read customer history (forked workers inherit the patches)."""
    monkeypatch.setattr(core, "reads_customer_history", lambda policy: True)
    monkeypatch.setattr(parallel, "reads_customer_history", lambda policy: True)
    monkeypatch.setattr(runtime, "CustomerState", StandIn, raising=False)
    monkeypatch.setattr(Interaction, "bind", lambda self, state: None, raising=False)
    yield


@pytest.fixture
def format2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Write and verify format /2 (the lead flips audit/records.py's FORMAT; these tests try it before)."""
    monkeypatch.setattr(records, "FORMAT", "escalation-audit/2")
    for module in (records, totals, verify):
        monkeypatch.setattr(module, "WITH_CUSTOMERS", True)
    monkeypatch.setattr(verify, "FORMAT", "escalation-audit/2")
    yield


@pytest.fixture
def format1(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Write and verify format /1, as the engine did before language 2 (FORMAT is switched in one place)."""
    monkeypatch.setattr(records, "FORMAT", "escalation-audit/1")
    for module in (records, totals, verify):
        monkeypatch.setattr(module, "WITH_CUSTOMERS", False)
    monkeypatch.setattr(verify, "FORMAT", "escalation-audit/1")
    yield


def ev(conversation: str, second: int, type_: str = "agent.warn", **extra: Any) -> dict[str, Any]:
    return {"conversation": conversation, "time": f"2026-11-22T10:00:{second:02d}Z", "type": type_, **extra}


# ------------------------------------------------------------------ Admission


def test_record_customer_reads_absent_empty_and_strings() -> None:
    assert record_customer({}) is None
    assert record_customer({"customer": ""}) is None
    assert record_customer({"customer": "c-1"}) == "c-1"
    for bad in (42, None, ["x"], True):
        with pytest.raises(EventError, match="customer"):
            record_customer({"customer": bad})


def test_first_customer_binds_and_later_events_may_omit_or_repeat_it() -> None:
    a = Admission(VOCABULARY, reads_customer_history=False)
    assert a.admit(ev("b1", 0)).customer is None
    first = a.admit(ev("b1", 1, customer="cust-1"))
    assert (first.customer, first.binds) == ("cust-1", True)
    assert a.admit(ev("b1", 2)).customer == "cust-1"
    again = a.admit(ev("b1", 3, customer="cust-1"))
    assert (again.customer, again.binds) == ("cust-1", False)
    assert a.admit(ev("b1", 4, customer="")).customer == "cust-1"
    assert a.customer_of("b1") == "cust-1"
    assert a.customers() == 1


def test_a_foreign_customer_is_rejected_naming_both_and_changes_nothing() -> None:
    a = Admission(VOCABULARY, reads_customer_history=False)
    a.admit(ev("b1", 0, customer="cust-1"))
    with pytest.raises(EventError) as err:
        a.admit(ev("b1", 5, customer="cust-2"))
    reason = str(err.value)
    assert "cust-2" in reason and "cust-1" in reason and "b1" in reason and reason.count(".") <= 1
    assert a.admit(ev("b1", 1)).customer == "cust-1"  # the rejected record's time (5) was not recorded


def test_a_non_string_customer_is_rejected_and_does_not_bind() -> None:
    a = Admission(VOCABULARY, reads_customer_history=False)
    with pytest.raises(EventError, match="`customer` must be a string naming the customer, not 42"):
        a.admit(ev("b5", 0, customer=42))
    assert a.customer_of("b5") is None and "b5" not in a.last


def test_a_customers_clock_going_backwards_is_rejected_only_when_the_policy_reads_its_history() -> None:
    for reads in (False, True):
        a = Admission(VOCABULARY, reads_customer_history=reads)
        a.admit(ev("b1", 10, customer="cust-1"))
        a.admit(ev("b2", 35, customer="cust-1"))
        late = ev("b3", 25, customer="cust-1")
        if reads:
            with pytest.raises(EventError, match="earlier than the latest event of customer \"cust-1\""):
                a.admit(late)
            assert a.customer_of("b3") is None
            with pytest.raises(EventError, match="customer"):  # a bound conversation's record without the key, too
                a.admit(ev("b1", 20))
            assert a.admit(ev("b4", 20)).customer is None  # anonymous: its own clock only
        else:
            assert a.admit(late).customer == "cust-1"


def test_the_conversations_own_order_comes_first() -> None:
    a = Admission(VOCABULARY, reads_customer_history=True)
    a.admit(ev("b1", 10))
    with pytest.raises(EventError, match="previous event of conversation 'b1'"):
        a.admit(ev("b1", 5, customer=42))


# ------------------------------------------------------------------ replay (conformance case 41)

CASE_41 = [
    ev("b1", 0, "interaction.start"),
    ev("b1", 5, "customer.message", abuse="insult"),
    ev("b1", 10, "agent.warn", customer="cust-1"),
    ev("b1", 12, "customer.message", abuse="insult"),
    ev("b1", 20, "customer.message", customer="cust-2", abuse="insult"),
    ev("b2", 30, "interaction.start", customer="cust-1"),
    ev("b2", 35, "customer.message", abuse="insult"),
    ev("b3", 25, "customer.message", customer="cust-1", abuse="insult"),
    ev("b4", 40, "customer.message", customer="", abuse="insult"),
    ev("b4", 41, "customer.message", abuse="insult"),
    ev("b1", 50, "agent.warn"),
    ev("b5", 59, "interaction.start", customer=42),
]


def _write(tmp: str, events: list[dict[str, Any]], name: str = "events.jsonl") -> list[str]:
    path = Path(tmp) / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return [str(path)]


def _serial(paths: list[str], **kwargs: Any) -> bytes:
    out = io.BytesIO()
    r = Replayer(_COMPILED, None, **kwargs)
    write_log(replay_records(_COMPILED, open_inputs(paths), None, replayer=r), out)
    return out.getvalue()


def _parallel(paths: list[str], jobs: int) -> bytes:
    out = io.BytesIO()
    replay_parallel(_COMPILED, open_inputs(paths), None, jobs, out)
    return out.getvalue()


def _records(log: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines()]


@pytest.mark.usefixtures("reads_history", "format2")
def test_case_41_rejects_the_records_the_conformance_case_names(tmp_path: Path) -> None:
    log = _serial(_write(str(tmp_path), CASE_41))
    body = [r for r in _records(log) if r["kind"] in ("decision", "rejected")]
    assert [r["seq"] for r in body if r["kind"] == "rejected"] == [5, 8, 12]
    customers = {r["seq"]: r["customer"] for r in body if r["kind"] == "decision"}
    assert customers == {1: None, 2: None, 3: "cust-1", 4: "cust-1", 6: "cust-1", 7: "cust-1", 9: None, 10: None, 11: "cust-1"}
    summary = _records(log)[-1]
    assert (summary["records"], summary["events"], summary["rejected"], summary["conversations"], summary["customers"]) == (12, 9, 3, 3, 1)
    assert verify_stream(io.BytesIO(log), records.ENGINE).ok
    same_log(_parallel(_write(str(tmp_path), CASE_41), 2), log)


@pytest.mark.usefixtures("format1")
def test_format_1_writes_no_customer_fields(tmp_path: Path) -> None:
    log = _serial(_write(str(tmp_path), CASE_41))
    recs = _records(log)
    assert recs[0]["format"] == "escalation-audit/1"
    assert all("customer" not in r for r in recs) and "customers" not in recs[-1]
    assert [r["seq"] for r in recs if r["kind"] == "rejected"] == [5, 12]  # three_strikes reads no customer history


@pytest.mark.usefixtures("format2")
def test_verify_refuses_a_decision_whose_customer_changes_or_is_missing(tmp_path: Path) -> None:
    from escalation.audit import AuditWriter

    log = _serial(_write(str(tmp_path), CASE_41))
    recs = [{k: v for k, v in r.items() if k not in ("prev", "hash")} for r in _records(log)]
    for change in ("cust-9", "missing", ""):
        bad = [dict(r) for r in recs]
        target = next(r for r in bad if r.get("seq") == 4)
        if change == "missing":
            del target["customer"]
        else:
            target["customer"] = change
        out = io.BytesIO()
        writer = AuditWriter(out)
        for r in bad:
            writer.write(r)
        result = verify_stream(io.BytesIO(out.getvalue()), records.ENGINE)
        assert not result.ok, change


@pytest.mark.usefixtures("reads_history", "format2")
def test_customers_are_parked_when_their_last_conversation_is_and_the_log_does_not_change(tmp_path: Path) -> None:
    events = [
        ev("a", 0, "interaction.start", customer="k"),
        ev("a", 1, "interaction.end", by="agent"),
        ev("b", 2, "interaction.start", customer="k"),
        ev("b", 3, "interaction.end", by="agent"),
        ev("a", 4, "agent.warn"),
        ev("c", 5, "interaction.start"),
        ev("c", 6, "agent.warn", customer="k"),
    ]
    paths = _write(str(tmp_path), events)
    store = MemoryStore()
    r = Replayer(_COMPILED, None, store=store)
    out = io.BytesIO()
    write_log(replay_records(_COMPILED, open_inputs(paths), None, replayer=r), out)
    assert r.customers is not None and r.customers.parked == 3  # after a's end, b's end, a's late event
    same_log(out.getvalue(), _serial(paths, park=False))


# ------------------------------------------------------------------ the ownership rule and the first pass


def test_owner_key_is_the_customers_when_bound() -> None:
    assert owner_key("c1", "cust-7") == key_of("cust-7") == owner_key("c2", "cust-7")
    assert owner_key("c1", None) == key_of("c1")


def test_the_first_pass_learns_late_bindings_before_routing(tmp_path: Path) -> None:
    routing = admission_pass(_COMPILED, open_inputs(_write(str(tmp_path), CASE_41)), True)
    assert routing.conversations == ["b1", "b2", "b4"]
    assert routing.customers == ["cust-1", "cust-1", None]
    assert sorted(routing.rejections) == [5, 8, 12]
    keys = list(routing.line_keys())
    assert keys[0] == keys[1] == keys[5] == key_of("cust-1")  # b1 before its binding goes with its customer
    assert keys[8] == key_of("b4") and keys[4] == 5


# ------------------------------------------------------------------ serial vs --jobs on generated multi-customer streams


@st.composite
def customer_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Interleaved conversations, some bound late to a few customers, some anonymous; foreign, empty and non-string customers."""
    stream = draw(event_streams(VOCABULARY, max_conversations=6, max_events=12, prefer=mentioned(POLICY, VOCABULARY)))
    pool = ["k1", "k2", "k3"]
    names = sorted({e["conversation"] for e in stream})
    plan = {c: (draw(st.sampled_from([None, *pool])), draw(st.integers(0, 4))) for c in names}
    seen: dict[str, int] = {}
    for e in stream:
        c = e["conversation"]
        n = seen[c] = seen.get(c, -1) + 1
        customer, at = plan[c]
        if customer is not None and n == at:
            e["customer"] = customer
        elif customer is not None and n > at and draw(st.integers(0, 5)) == 0:
            e["customer"] = draw(st.sampled_from([customer, customer, "", "k9", 7]))
    return stream


@pytest.mark.parametrize("reads", [False, True])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stream=customer_streams(), jobs=st.integers(2, 3), block=st.integers(1, 5))
def test_jobs_equal_serial_on_multi_customer_streams(
    stream: list[dict[str, Any]], jobs: int, block: int, reads: bool, monkeypatch: pytest.MonkeyPatch, format2: None
) -> None:
    if reads:
        monkeypatch.setattr(core, "reads_customer_history", lambda policy: True)
        monkeypatch.setattr(parallel, "reads_customer_history", lambda policy: True)
        monkeypatch.setattr(runtime, "CustomerState", StandIn, raising=False)
        monkeypatch.setattr(Interaction, "bind", lambda self, state: None, raising=False)
    monkeypatch.setattr(parallel, "BLOCK", block)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write(tmp, stream)
        serial = _serial(paths)
        same_log(_parallel(paths, jobs), serial)
        same_log(_serial(paths, park=False), serial)
        assert verify_stream(io.BytesIO(serial), records.ENGINE).ok


# ------------------------------------------------------------------ Dask (local, in-process workers)


def _bare(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("prev", "hash")}


def _multi_customer_stream() -> list[dict[str, Any]]:
    """A fixed stream: forty conversations of six customers, a quarter bound late, some anonymous, foreign and bad customers."""
    events: list[dict[str, Any]] = []
    for n in range(40):
        c, customer = f"d{n}", (None if n % 7 == 0 else f"k{n % 6}")
        for k in range(5):
            e = ev(c, (n + 3 * k) % 60, ["interaction.start", "customer.message", "agent.warn", "customer.message", "interaction.end"][k])
            if e["type"] == "customer.message":
                e["abuse"] = "insult"
            if e["type"] == "interaction.end":
                e["by"] = "agent"
            if customer is not None and k == (1 if n % 4 == 0 else 0):
                e["customer"] = customer
            if k == 3 and n % 9 == 0:
                e["customer"] = "k-foreign" if n % 2 else 5
            events.append(e)
    return events


def test_dask_holds_the_serial_decisions_on_a_multi_customer_stream(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    from escalation.replay.dask import decisions_by_seq, replay_distributed

    paths = _write(str(tmp_path), _multi_customer_stream())
    serial = {r["seq"]: _bare(r) for r in _records(_serial(paths)) if r["kind"] in ("decision", "rejected")}
    assert any(r["kind"] == "rejected" for r in serial.values())
    policy = str(Path(__file__).resolve().parents[3] / "policies" / "three_strikes.esc")
    with LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as local:
        replay_distributed(policy, paths, str(tmp_path / "out"), scheduler=local.scheduler_address, partitions=3, block_bytes=512)
    assert {seq: _bare(r) for seq, r in decisions_by_seq(tmp_path / "out").items()} == serial
