"""Facts of the language shared by every phase: the AST, the vocabulary, units of time, the limits.

These modules import nothing else of the package except :mod:`escalation.errors`
(for :class:`~escalation.errors.Span`), so every phase can use them without a cycle.
"""
