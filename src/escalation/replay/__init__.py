"""Event files -> audit log: one partition's loop, the ownership rule, and the serial, --jobs and Dask drivers."""

from ..audit import ENGINE, header_record, write_log
from ..state import SpillError
from ..streams import Input, InputError, Inputs, discard_inputs, open_inputs
from .core import END, PartWriter, Replayer, StrictStop, input_lines, records_of
from .parallel import ParallelError, replay_parallel, usable
from .partition import conversation_key, owner_of_conversation, partition_of
from .serial import replay_records

__all__ = [
    "END",
    "ENGINE",
    "Input",
    "InputError",
    "Inputs",
    "ParallelError",
    "PartWriter",
    "Replayer",
    "SpillError",
    "StrictStop",
    "conversation_key",
    "discard_inputs",
    "header_record",
    "input_lines",
    "open_inputs",
    "owner_of_conversation",
    "partition_of",
    "records_of",
    "replay_parallel",
    "replay_records",
    "usable",
    "write_log",
]
