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
(:func:`admission_pass`) runs admission serially over the whole input and gives each
line's key (:class:`Routing`) before anything is routed.
"""

from __future__ import annotations

import array
import json
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from ..compile import CompiledPolicy
from ..errors import EventError
from ..lang import DEFAULT_LIMITS, Limits
from ..runtime import Admission, decode_line
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


@attrs.define
class Routing:
    """What the first pass of a partitioned replay learns (interfaces.md §2): each line's owner, and the rejections.

    :func:`admission_pass` runs the one :class:`~escalation.runtime.admit.Admission` over the
    whole input serially (every rejection rule of §1; no rule evaluated). Then ``key(seq)``
    is the :func:`owner_key` of the line's conversation with its final binding, so that all
    the conversations of a customer land together; a rejected line's key is its ``seq``
    (it is written from ``rejections`` by whoever handles it: no state depends on it).
    """

    conversations: list[str]  # in order of first acceptance
    customers: list[str | None]  # the final binding of each of ``conversations``
    of_line: array.array[int]  # per line (seq - 1): index into ``conversations``, or -1 when rejected
    rejections: dict[int, str]  # seq -> the reason the first pass gave

    def keys(self) -> list[int]:
        """The :func:`owner_key` of each conversation, in the order of ``conversations``."""
        return [owner_key(c, b) for c, b in zip(self.conversations, self.customers, strict=True)]

    def line_keys(self) -> Iterator[int]:
        """The key of every line, in order (a rejected line's is its seq)."""
        keys = self.keys()
        for at, index in enumerate(self.of_line):
            yield keys[index] if index >= 0 else at + 1


def admission_pass(policy: CompiledPolicy, inputs: Sequence[Input], reads_customer_history: bool, limits: Limits = DEFAULT_LIMITS) -> Routing:
    """The first pass: decode, validate and admit every line in input order (no rule evaluated)."""
    admission = Admission(policy.vocabulary, reads_customer_history)
    index: dict[str, int] = {}
    conversations: list[str] = []
    of_line = array.array("q")
    rejections: dict[int, str] = {}
    for seq, (_, _, data) in enumerate(numbered_lines(inputs, limits), 1):
        try:
            admitted = admission.admit(decode_line(data, limits))
        except EventError as err:
            rejections[seq] = str(err)
            of_line.append(-1)
            continue
        conversation = admitted.event.conversation
        at = index.get(conversation)
        if at is None:
            at = index[conversation] = len(conversations)
            conversations.append(conversation)
        of_line.append(at)
    customers = [admission.customer_of(c) for c in conversations]
    return Routing(conversations, customers, of_line, rejections)
