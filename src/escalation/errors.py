"""Source spans, diagnostics and the exception hierarchy.

Every problem a policy author can cause is a :class:`Diagnostic` with a stable
code, a span and a hint; the exceptions carry lists of them so that callers
never need to parse messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

import attrs

Severity = Literal["error", "warning"]


@attrs.frozen(slots=True)
class Span:
    """A region of a source file: 1-based lines, 1-based columns in code points, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0  # code-point offset of the first character
    end: int = 0  # code-point offset just past the last character

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


NO_SPAN = Span(1, 1, 1, 1, 0, 0)
_EXCERPT_WIDTH = 100


@attrs.frozen(slots=True)
class Diagnostic:
    """One finding: ``code`` is stable (``E…`` errors, ``W…`` warnings)."""

    code: str
    severity: Severity
    message: str
    span: Span
    hint: str = ""
    path: str = "<policy>"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.span.line, self.span.column, self.code)

    def render(self, source: str | None = None, *, source_lines: Sequence[str] | None = None) -> str:
        """``path:line:col: error[E012]: message``, the source line, a caret, a ``help:`` line.

        ``source_lines`` is ``source.split("\\n")`` done once by a caller rendering many
        diagnostics of one source (:func:`render_all`), so that each costs only its own line.
        """
        head = f"{self.path}:{self.span.line}:{self.span.column}: {self.severity}[{self.code}]: {self.message}"
        lines = [head]
        text_lines = source_lines if source_lines is not None else (source.split("\n") if source is not None else None)
        if text_lines is not None and 1 <= self.span.line <= len(text_lines):
            text = text_lines[self.span.line - 1]
            start = self.span.column - 1
            if len(text) > _EXCERPT_WIDTH:  # show a window around the column
                left = max(0, min(start - _EXCERPT_WIDTH // 2, len(text) - _EXCERPT_WIDTH))
                text = ("…" if left else "") + text[left : left + _EXCERPT_WIDTH] + ("…" if left + _EXCERPT_WIDTH < len(text) else "")
                start = start - left + (1 if left else 0)
            text = text.replace("\t", " ")  # after the window: a long line costs only its excerpt
            gutter = f"{self.span.line:>4} | "
            lines.append(gutter + text)
            if self.span.end_line == self.span.line:
                width = max(1, self.span.end_column - self.span.column)
            else:
                width = max(1, len(text) - start)
            width = min(width, max(1, len(text) - start + 1))
            lines.append(" " * (len(gutter) - 2) + "| " + " " * start + "^" * width)
        if self.hint:
            lines.append(f"  help: {self.hint}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


def render_all(diagnostics: Iterable[Diagnostic], source: str | None) -> str:
    """Every diagnostic of one source, each with its excerpt: the source is split into lines once."""
    source_lines = source.split("\n") if source is not None else None
    return "\n".join(d.render(source, source_lines=source_lines) for d in diagnostics)


#: The exit codes of the command line (README, "Exit codes"); an error carries its own as ``exit_code``.
EXIT_OK = 0
EXIT_POLICY = 1  # a policy is invalid (or its tests failed)
EXIT_USAGE = 2  # usage, or a file that cannot be read or written
EXIT_VIOLATIONS = 3  # violations, with --fail-on-violation
EXIT_REJECTED = 4  # records were rejected
EXIT_TAMPERED = 5  # an audit log is tampered, truncated, or differs from a fresh replay


class EscalationError(Exception):
    """Base class of every error the library raises on purpose; ``exit_code`` is the command's exit code for it."""

    #: The exit code of a command stopped by this error.
    exit_code: ClassVar[int] = EXIT_USAGE


class PolicyError(EscalationError):
    """A policy could not be loaded: it has errors. ``diagnostics`` lists every finding."""

    exit_code = EXIT_POLICY

    def __init__(self, diagnostics: list[Diagnostic], source: str | None = None) -> None:
        self.diagnostics = diagnostics
        self.source = source
        errors = [d for d in diagnostics if d.is_error]
        first = errors[0] if errors else (diagnostics[0] if diagnostics else None)
        summary = f"{len(errors)} error(s)"
        if first is not None:
            summary += f"; first: {first.path}:{first.span}: {first.message}"
        super().__init__(summary)

    def render(self) -> str:
        return render_all(self.diagnostics, self.source)


class EventError(EscalationError):
    """An event was rejected; the message is the reason, a sentence."""

    exit_code = EXIT_REJECTED


class SnapshotError(EscalationError):
    """A snapshot cannot be resumed (wrong format, another policy, damaged)."""

    exit_code = EXIT_USAGE
