"""The engine's version: written into every audit header, so a leaf that every layer may read."""

__version__ = "0.1.0"
