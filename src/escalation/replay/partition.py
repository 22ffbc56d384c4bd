"""The one ownership rule: which partition (or process of `--jobs`) handles the record on a line.

All of a conversation's records must meet the same state, so a record goes where its
conversation goes: :func:`conversation_key` is the CRC-32 of its conversation id (the
line's ``seq`` when it names none: such a record is rejected wherever it goes). Dask's
partitions take the key modulo their count (:func:`partition_of`); the processes of
`--jobs` give the parent a smaller share (:func:`slot`), since it also writes the chain;
verifying a partitioned audit asks :func:`owner_of_conversation`, the same rule from the
conversation id a decision record names.

When the policy reads customer history the rule is :func:`owner_key`: a conversation
bound to a customer goes with its customer. A conversation may bind late, and admission
(binding, a customer's time order) depends on other conversations, so a first pass
(:class:`FirstPass`, fed one line at a time by the Dask driver; :func:`admission_pass` over
a replay's inputs for `--jobs` and for comparing a partitioned audit) runs admission
serially over the whole input and gives each line's key (:class:`Routing`) before anything
is routed. Every driver and every verifier names the rule it used with
:data:`~escalation.audit.BY_CONVERSATION` or :data:`~escalation.audit.BY_CUSTOMER` and asks
:func:`owner_of` (a partitioned audit's manifest records the name).
"""

from __future__ import annotations

import array
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from ..audit import BY_CUSTOMER
from ..compile import CompiledPolicy
from ..errors import EventError
from ..lang import DEFAULT_LIMITS, EventType, Limits
from ..runtime import Admission, Event, admit_conversation, decode_line
from ..streams import Input, numbered_lines

try:
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

_OPEN = b'{"conversation": "'
_OPEN_TIGHT = b'{"conversation":"'

#: Completing the chain of a record costs the parent of `--jobs` about this fraction of what
#: replaying the record costs (measured on the three-strikes policy; see docs/scaling.md). It
#: sets the parent's share of the conversations.
CHAIN_COST = 0.22


def key_of(conversation: str) -> int:
    """The key of a conversation id: the CRC-32 of its UTF-8."""
    return zlib.crc32(conversation.encode("utf-8"))


def conversation_key(data: bytes, seq: int) -> int:
    """What decides which process (or partition) handles the record on this line.

    :func:`key_of` its conversation id as validation reads it, or ``seq`` when the line
    names no conversation (the record is rejected, and no state depends on who rejects
    it). Every process computes it for every line, so it must be cheap: the fast path
    reads the id straight from the bytes of a line that opens with it (``{"conversation":
    "`` or ``{"conversation":"``, no backslash in the id, the key nowhere else on the
    line); other lines are decoded, by the replay's own decoder where orjson refuses one.
    """
    start = 18 if data.startswith(_OPEN) else 17 if data.startswith(_OPEN_TIGHT) else 0
    if start and data.count(b'"conversation"') == 1:
        end = data.find(b'"', start)
        if end > start:
            value = data[start:end]
            if b"\\" not in value:
                return zlib.crc32(value)
    try:
        obj = _loads(data)
    except (ValueError, TypeError):
        try:  # what orjson refuses (integers beyond 64 bits), the replay's decoder may accept
            obj = decode_line(data)
        except EventError:
            return seq
    conversation = obj.get("conversation") if type(obj) is dict else None
    if type(conversation) is str and conversation:
        try:
            return key_of(conversation)
        except UnicodeEncodeError:  # a lone surrogate: the record is rejected wherever it goes
            return seq
    return seq


def partition_of(data: bytes, seq: int, count: int) -> int:
    """The partition of ``count`` (a distributed replay) that handles the record on this line."""
    return conversation_key(data, seq) % count


def owner_of_conversation(conversation: str, count: int) -> int:
    """The partition of ``count`` that holds the decisions of ``conversation`` (the rule of :func:`partition_of`)."""
    return key_of(conversation) % count


def parent_share(jobs: int) -> int:
    """The parent's share of the conversations, in thousandths, with ``jobs`` processes in all.

    The parent also completes the chain of every record, so it takes fewer conversations
    than a worker, to finish with them: ``share + CHAIN_COST = (1 - share) / (jobs - 1)``,
    solved for ``share`` (0.39 for 2 processes, none from 6 on).
    """
    if jobs < 2:
        return 1000
    each = 1 / (jobs - 1)
    return max(0, round(1000 * (each - CHAIN_COST) / (1 + each)))


def slot(key: int, jobs: int, share: int) -> int:
    """The process of `--jobs` (0 is the parent) that handles a record whose :func:`conversation_key` is ``key``."""
    if key % 1000 < share:
        return 0
    return 1 + (key // 1000) % (jobs - 1)


def owner(data: bytes, seq: int, jobs: int) -> int:
    """The process of ``jobs`` (0 is the parent) that handles the record on this line."""
    return slot(conversation_key(data, seq), jobs, parent_share(jobs))


def owner_key(conversation: str, customer: str | None) -> int:
    """The ONE ownership rule by name: a conversation bound to a customer goes with its customer, any other by its own id.

    When the policy reads customer history every conversation of one customer must meet the
    same customer state, so the key is the customer's (:func:`key_of`); an anonymous
    conversation keeps its own. ``customer`` is the conversation's binding at the end of the
    input (it binds late: :class:`Routing` learns it in a first pass).
    """
    return key_of(customer if customer is not None else conversation)


def owner_of(conversation: str, customer: str | None, count: int, by: str) -> int:
    """The partition of ``count`` that holds the decisions of ``conversation`` under the rule named ``by``.

    ``customer`` is the conversation's final binding (or None); it counts only when ``by``
    is :data:`~escalation.audit.BY_CUSTOMER` (a replay of a policy that reads customer
    history), else the conversation goes by its own id, as :func:`partition_of` routes it.
    """
    return owner_key(conversation, customer if by == BY_CUSTOMER else None) % count


@attrs.define
class Routing:
    """What the first pass of a partitioned replay learns (interfaces.md §2): each line's owner, and the rejections.

    :class:`FirstPass` runs the one :class:`~escalation.runtime.admit.Admission` over the
    whole input serially (every rejection rule of §1; no rule evaluated). Then ``key(seq)``
    is the :func:`owner_key` of the line's conversation with its final binding, so that all
    the conversations of a customer land together; a rejected line's key is its ``seq``
    (it is written from ``rejections`` by whoever handles it: no state depends on it).
    Memory: 4 bytes per line (``of_line``), the conversations, and the rejections' reasons.
    """

    conversations: list[str]  # in order of first acceptance
    customers: list[str | None]  # the final binding of each of ``conversations``
    of_line: array.array[int]  # per line (seq - 1): index into ``conversations``, or -1 when rejected
    rejections: dict[int, str]  # seq -> the reason the first pass gave (in seq order)

    def keys(self) -> list[int]:
        """The :func:`owner_key` of each conversation, in the order of ``conversations``."""
        return [owner_key(c, b) for c, b in zip(self.conversations, self.customers, strict=True)]

    def line_keys(self) -> Iterator[int]:
        """The key of every line, in order (a rejected line's is its seq)."""
        keys = self.keys()
        for at, index in enumerate(self.of_line):
            yield keys[index] if index >= 0 else at + 1

    def partitions(self, count: int) -> array.array[int]:
        """The partition of ``count`` of every line, in order (``array("I")``: 4 bytes a line): its key modulo ``count``."""
        return array.array("I", (key % count for key in self.line_keys()))


class FirstPass:
    """The first pass fed one line at a time, in input order: decode, validate and admit it (no rule evaluated).

    It rejects exactly what a serial replay rejects: the reasons of §1, the customer's
    (language.md §9), and the ``max_open_conversations`` limit, which a replay without an
    idle horizon reaches when that many conversations have had an accepted event (they all
    count as open: ended ones are parked, not forgotten). So a partition fed the lines the
    first pass accepted accepts them all, and writes the others from :attr:`Routing.rejections`.
    """

    def __init__(self, vocabulary: dict[str, EventType], reads_customer_history: bool, limits: Limits = DEFAULT_LIMITS) -> None:
        self.admission = Admission(vocabulary, reads_customer_history)
        self.limits = limits
        self.index: dict[str, int] = {}
        self.conversations: list[str] = []
        self.of_line = array.array("i")
        self.rejections: dict[int, str] = {}

    def _opening(self, event: Event) -> None:
        if event.conversation not in self.index:
            admit_conversation(len(self.conversations), self.limits)

    def feed(self, data: bytes) -> None:
        """The next line of the input (its seq is the number of lines fed before it, plus one)."""
        try:
            admitted = self.admission.admit(decode_line(data, self.limits), self._opening)
        except EventError as err:
            self.rejections[len(self.of_line) + 1] = str(err)
            self.of_line.append(-1)
            return
        conversation = admitted.event.conversation
        at = self.index.get(conversation)
        if at is None:
            at = self.index[conversation] = len(self.conversations)
            self.conversations.append(conversation)
        self.of_line.append(at)

    def feed_all(self, lines: Iterable[bytes]) -> FirstPass:
        for data in lines:
            self.feed(data)
        return self

    @property
    def lines(self) -> int:
        """The lines fed so far."""
        return len(self.of_line)

    def routing(self) -> Routing:
        """What the pass learnt (call it after the last line)."""
        customer_of = self.admission.customer_of
        return Routing(self.conversations, [customer_of(c) for c in self.conversations], self.of_line, self.rejections)


def admission_pass(policy: CompiledPolicy, inputs: Sequence[Input], reads_customer_history: bool, limits: Limits = DEFAULT_LIMITS) -> Routing:
    """The first pass over a replay's inputs (:class:`FirstPass`), in input order."""
    lines = (data for _, _, data in numbered_lines(inputs, limits))
    return FirstPass(policy.vocabulary, reads_customer_history, limits).feed_all(lines).routing()
