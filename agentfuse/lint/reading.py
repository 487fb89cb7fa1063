"""Read a file to lint: regular files only, never blocking, never more than a size limit.

A FIFO named ``x.py`` would block a plain ``read`` forever, a symlink loop or a dangling
link cannot be read, and a 50 MB generated module would take gigabytes in libcst. Each of
these costs its file one AF001 finding saying why, never the run. The file is opened
without blocking and checked with ``fstat`` on the open descriptor, so what is checked is
what is read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from agentfuse.lint.checker import parse_error
from agentfuse.lint.config import DEFAULT_MAX_FILE_BYTES
from agentfuse.lint.finding import Finding

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def read_source(path: Path, display: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes | Finding:
    """The bytes of the regular file at ``path``, or the AF001 finding saying why not.

    ``max_bytes`` 0 means no limit.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return parse_error(display, f"cannot read file: {_open_error(path, exc)}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
            return parse_error(display, f"cannot read file: it is {kind}, not a regular file")
        if max_bytes and info.st_size > max_bytes:
            return too_large(display, info.st_size, max_bytes)
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1) if max_bytes else handle.read()
    except OSError as exc:
        return parse_error(display, f"cannot read file: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if max_bytes and len(data) > max_bytes:  # grew since fstat
        return too_large(display, len(data), max_bytes)
    return data


def too_large(display: str, size: int, max_bytes: int) -> Finding:
    """AF001 for a file over the ``max-file-bytes`` limit."""
    return parse_error(
        display,
        f"file is too large to lint: {size:,} bytes, more than max-file-bytes = {max_bytes:,}; "
        "raise it in [tool.agentfuse] or with --max-file-bytes (0 = no limit) to lint it",
    )


def _open_error(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return "broken symbolic link (its target does not exist)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)
