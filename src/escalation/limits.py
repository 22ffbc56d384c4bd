"""Moved to :mod:`escalation.lang.limits`; this module re-exports its names for older imports."""

from .lang.limits import *  # noqa: F403
