"""Where state lives between events, behind one :class:`StateStore` protocol: in memory, or spilled to disk."""

from .memory import MemoryStore
from .spill import SpillError, SpillStore
from .sqlite import EngineStore, SQLiteStore, StoredConversation, StoreError
from .store import Parked, Position, ServiceStore, StateStore

__all__ = ["EngineStore", "MemoryStore", "Parked", "Position", "SQLiteStore", "ServiceStore", "SpillError", "SpillStore", "StateStore", "StoreError", "StoredConversation"]
