"""The inputs of a replay: each digested for the header, read again with a check that its bytes are those digested.

A regular file is read where it is; anything that can be read only once (standard input,
a pipe, a FIFO, a device) is first copied to a private nameless file (spooled). The
inputs of a replay are a context manager (:func:`open_inputs`): leaving it deletes the
copies. :func:`numbered_lines` is the one loop over the lines of all the inputs.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import attrs

from ..errors import EXIT_USAGE, EscalationError
from ..lang import DEFAULT_LIMITS, Limits
from ..runtime import iter_numbered


class InputError(EscalationError):
    """An input file cannot be read."""

    exit_code = EXIT_USAGE


#: The read size when an input is digested or copied.
_BLOCK = 1 << 20
#: The buffer through which the replay reads an input (as fast as any larger one, and it stays in the cache).
_BUFFER = 1 << 16


@attrs.define
class Input:
    """One input as given on the command line: a regular file, or a private copy of anything else.

    ``sha256`` is the digest the header records. A regular file is read twice: once for
    the digest, and again by the replay (in each process of `--jobs`), which digests
    the bytes it reads and checks, when it reaches the end, that they are the bytes
    digested and that the file's identity, size and modification time are as they were
    (``stamp``); otherwise it raises :class:`InputError`, so that no log can name one
    content and hold the records of another. Anything else (standard input, a pipe such as
    ``<(zcat x.gz)`` or ``/dev/stdin``, a named FIFO, a device) can be read only once: it
    is copied to ``spool``, a private temporary file with no name (it disappears when it
    is closed or the process ends), and digested from the bytes copied.
    """

    path: str
    file: Path
    sha256: str
    size: int | None = None
    stamp: tuple[int, int, int, int] | None = None  # (st_dev, st_ino, st_size, st_mtime_ns) once digested
    spool: IO[bytes] | None = attrs.field(default=None, eq=False, repr=False)

    def open(self) -> io.BufferedReader:
        """A binary stream of the bytes to replay; at their end it raises InputError if they are not those digested."""
        if self.spool is not None:
            return io.BufferedReader(_CheckedReader(self, self.spool.fileno(), own=False), _BUFFER)
        try:
            fd = os.open(self.file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as err:
            raise InputError(f"cannot read {self.path}: {err.strerror or err}") from None
        if self.stamp is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.stamp[:2]:
                os.close(fd)
                raise InputError(_changed(self.path))
        return io.BufferedReader(_CheckedReader(self, fd, own=True), _BUFFER)

    def finished(self, digest: str, size: int, fd: int) -> None:
        """The replay has read ``size`` bytes whose SHA-256 is ``digest``: they must be those digested."""
        if digest != self.sha256 or (self.size is not None and size != self.size):
            raise InputError(_changed(self.path))
        if self.stamp is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self.stamp:
                raise InputError(_changed(self.path))

    def discard(self) -> None:
        """Close (and so delete) the private copy, if there is one; safe to call again."""
        if self.spool is not None:
            self.spool.close()


def _changed(path: str) -> str:
    return f"{path} changed while it was being replayed: its bytes, size or modification time are no longer those digested for the header"


class _CheckedReader(io.RawIOBase):
    """Positional reads of a descriptor, digested; at the end, :meth:`Input.finished` checks them.

    Positional (``pread``), so that the processes of `--jobs`, which inherit a spool's
    descriptor, each read it from the start without sharing a file offset.
    """

    def __init__(self, inp: Input, fd: int, own: bool) -> None:
        super().__init__()
        self._inp = inp
        self._fd = fd
        self._own = own
        self._pos = 0
        self._digest = hashlib.sha256()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        if _preadv is not None:
            n: int = _preadv(self._fd, [view], self._pos)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(self._fd, len(view), self._pos) if hasattr(os, "pread") else _seek_read(self._fd, len(view), self._pos)
            n = len(data)
            view[:n] = data
        if n:
            self._pos += n
            self._digest.update(view[:n])
        else:
            self._done = True
            self._inp.finished(self._digest.hexdigest(), self._pos, self._fd)
        return n

    def close(self) -> None:
        if not self.closed and self._own:
            os.close(self._fd)
        super().close()


_preadv = getattr(os, "preadv", None)


def _seek_read(fd: int, n: int, pos: int) -> bytes:  # pragma: no cover - platforms without pread
    os.lseek(fd, pos, os.SEEK_SET)
    return os.read(fd, n)


def _read_stdin() -> IO[bytes]:
    """Standard input as a binary stream, or InputError when it is closed (``<&-``)."""
    stream = getattr(sys.stdin, "buffer", None) if sys.stdin is not None else None
    if stream is None:
        raise InputError("cannot read standard input (`-`): it is closed")
    return stream  # type: ignore[no-any-return]


def _spool(source: IO[bytes] | int, path: str, spool_dir: str | None) -> Input:
    """Copy a stream (or descriptor) that can be read only once to a private nameless file, digesting it."""
    try:
        spool = tempfile.TemporaryFile(prefix="escalation-spool-", dir=spool_dir)  # noqa: SIM115
    except OSError as err:
        raise InputError(f"cannot copy {path} to a temporary file in {spool_dir or tempfile.gettempdir()}: {err.strerror or err}") from None
    digest = hashlib.sha256()
    size = 0
    try:
        while True:
            try:
                block = os.read(source, _BLOCK) if isinstance(source, int) else source.read(_BLOCK)
            except OSError as err:
                raise InputError(f"cannot read {path}: {err.strerror or err}") from None
            if not block:
                break
            digest.update(block)
            size += len(block)
            try:
                spool.write(block)
            except OSError as err:
                raise InputError(f"cannot copy {path} to a temporary file: {err.strerror or err}") from None
        try:
            spool.flush()
        except OSError as err:
            raise InputError(f"cannot copy {path} to a temporary file: {err.strerror or err}") from None
    except BaseException:
        spool.close()
        raise
    return Input(path, Path(path), digest.hexdigest(), size, None, spool)


def _digest_file(fd: int, path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        while block := os.read(fd, _BLOCK):
            digest.update(block)
            size += len(block)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    return digest.hexdigest(), size


def open_input(path: str, spool_dir: str | None = None) -> Input:
    """Digest one input (``-`` is standard input); what is not a regular file is spooled, read once."""
    if path == "-":
        return _spool(_read_stdin(), path, spool_dir)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))  # a FIFO waits here for its writer
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"cannot read {path}: it is a folder, not a file of events")
        if not stat.S_ISREG(st.st_mode):
            return _spool(fd, path, spool_dir)
        digest, size = _digest_file(fd, path)
        st = os.fstat(fd)
        return Input(path, Path(path), digest, size, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    finally:
        os.close(fd)


class Inputs(list[Input]):
    """The inputs of one replay, in order: a list, and a context manager that deletes their private copies on leaving."""

    def __enter__(self) -> Inputs:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        discard_inputs(self)


def open_inputs(paths: list[str], spool_dir: str | None = None) -> Inputs:
    """Digest every input first (the header needs them); what is not a regular file is spooled (see :class:`Input`).

    ``with open_inputs(paths) as inputs:`` deletes the copies at the end (or call :func:`discard_inputs`).
    """
    out = Inputs()
    try:
        for path in paths:
            out.append(open_input(path, spool_dir))
    except BaseException:
        discard_inputs(out)
        raise
    return out


def discard_inputs(inputs: Sequence[Input]) -> None:
    """Delete the private copies of the inputs that have one."""
    for inp in inputs:
        inp.discard()


def numbered_lines(inputs: Sequence[Input], limits: Limits = DEFAULT_LIMITS) -> Iterator[tuple[int, int, bytes]]:
    """(input index, line number, bytes) of every non-blank line of ``inputs``, in input order: the one input loop.

    The n-th line yielded has seq n. Each input is read through :meth:`Input.open`, so
    an input whose bytes are not those digested raises InputError at its end.
    """
    for k, inp in enumerate(inputs):
        with inp.open() as fh:
            for number, data in iter_numbered(fh, limits):
                yield k, number, data
