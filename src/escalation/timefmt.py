"""Moved to :mod:`escalation.lang.units`; this module re-exports its names for older imports."""

from .lang.units import *  # noqa: F403
