"""Moved to :mod:`escalation.lang.vocabulary`; this module re-exports its names for older imports."""

from .lang.vocabulary import *  # noqa: F403
