"""Event files -> audit log: one partition's loop, the ownership rule, and the serial, --jobs and Dask drivers."""

from .core import (
    ENGINE,
    Input,
    InputError,
    Replayer,
    SpillError,
    StrictStop,
    discard_inputs,
    open_inputs,
    replay_records,
    write_log,
)
from .parallel import ParallelError, replay_parallel, usable

__all__ = [
    "ENGINE",
    "Input",
    "InputError",
    "ParallelError",
    "Replayer",
    "SpillError",
    "StrictStop",
    "discard_inputs",
    "open_inputs",
    "replay_parallel",
    "replay_records",
    "usable",
    "write_log",
]
