"""Moved to :mod:`escalation.lang.ast`; this module re-exports its names for older imports."""

from .lang.ast import *  # noqa: F403
