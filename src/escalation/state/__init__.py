"""Where state lives between events, behind one :class:`StateStore` protocol: in memory, or spilled to disk."""

from .memory import MemoryStore
from .spill import SpillError, SpillStore
from .store import Parked, StateStore

__all__ = ["MemoryStore", "Parked", "SpillError", "SpillStore", "StateStore"]
