"""Writing files whole or not at all: the audit log of `replay -o` and the policies `fmt` rewrites.

A file is written to a temporary file beside it and renamed over it at the end, so it is
whole or untouched. A rename replaces whatever is at the path, so the audit log's path is
checked first (:func:`check_target`): it must be new, or a regular file that is neither
the policy nor an input. A new file gets the mode ``0o666`` less the umask, as a shell
redirection would give it; a rewritten file keeps its mode (and, where the process may,
its owner), and `fmt` rewrites the target of a symbolic link, which stays a link.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Sequence

from ..errors import EXIT_USAGE, EscalationError


class OutputError(EscalationError):
    """An output path that must not be written (one sentence, for the command line)."""

    exit_code = EXIT_USAGE


def umask() -> int:
    """The process's umask (``os.umask`` can only be read by setting it: it is set back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words: ``a regular file``, ``a named pipe (FIFO)``..."""
    for test, words in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a pipe or FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def check_target(path: str, protected: Sequence[tuple[str, os.stat_result]], option: str = "-o") -> os.stat_result | None:
    """Whether the log may be renamed to ``path``: None for a new path in an existing folder, the stat of a regular file.

    Raises :class:`OutputError` for a path whose folder is missing, an existing path that is
    not a regular file (a symbolic link, a device, a FIFO, a folder...), and a regular file
    that is one of ``protected`` (``(words, stat)`` of the policy and the inputs).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        folder = os.path.dirname(path) or "."
        try:
            folder_st = os.stat(folder)
        except OSError:
            raise OutputError(f"cannot write {option} {path}: the folder {folder} does not exist") from None
        if not stat.S_ISDIR(folder_st.st_mode):
            raise OutputError(f"cannot write {option} {path}: {folder} is not a folder") from None
        return None
    except OSError as err:
        raise OutputError(f"cannot write {option} {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode):
        what = kind(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            try:
                what += f" to {kind(os.stat(path).st_mode)}"
            except OSError:
                what += " to nothing"
        raise OutputError(
            f"{option} {path} is {what}, not a regular file: the audit log is written beside it and renamed over it, "
            f"which would replace it, so give a new path or a regular file (without {option} the log goes to standard output)"
        )
    for words, other in protected:
        if (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino):
            raise OutputError(f"{option} {path} is {words}: writing the audit log there would replace it")
    return st


def _keep_owner(fd: int, like: os.stat_result) -> None:
    """Give the new file the owner and group of the one it replaces, where the process may (root; a group of its own)."""
    if hasattr(os, "fchown"):
        with contextlib.suppress(OSError):
            os.fchown(fd, like.st_uid, like.st_gid)


def temp_beside(path: str, like: os.stat_result | None) -> tuple[int, str]:
    """A new temporary file in ``path``'s folder, with the mode ``path`` should end with: ``like``'s, or 0o666 less the umask."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".escalation-", suffix=".tmp", dir=folder)
    try:
        if like is not None:
            os.fchmod(fd, stat.S_IMODE(like.st_mode))
            _keep_owner(fd, like)
        else:
            os.fchmod(fd, 0o666 & ~umask())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def write_atomically(path: str, data: bytes) -> None:
    """Replace the file at ``path`` by ``data``, whole or not at all, keeping its mode; a symbolic link stays a link.

    The final file (a link's target, through every link) is rewritten beside itself.
    Raises :class:`OutputError` when that is not a regular file, OSError when it cannot be written.
    """
    real = os.path.realpath(path)
    try:
        st: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputError(f"cannot rewrite {path}: it is {kind(st.st_mode)}, not a regular file")
    folder = os.path.dirname(real) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            if st is not None:
                os.fchmod(fh.fileno(), stat.S_IMODE(st.st_mode))
                _keep_owner(fh.fileno(), st)
            else:
                os.fchmod(fh.fileno(), 0o666 & ~umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
