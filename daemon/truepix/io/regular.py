"""Open a source file only when it is a regular file, without ever blocking on what it is not.

A queued photo can be replaced by a FIFO, a device or a socket, or sit on a network share that
hangs.  Opening a FIFO by name blocks until a writer appears, and a C library that does so (Exiv2,
through pyexiv2) holds Python's GIL meanwhile: the whole daemon freezes, API and SIGTERM included.
So every read of a source goes through here: ``os.open`` with ``O_NONBLOCK`` (never waits for a
FIFO's writer), ``fstat`` on that descriptor (a regular file, or a clear error naming what it is),
and the bytes are read from that same descriptor, never by the name again.  The reads run in
Python's ``os.read``, which releases the GIL, so a hung share stalls one job's thread, not the
process.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from truepix.errors import ImageReadError

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def what_is(mode: int) -> str:
    """'a FIFO (named pipe)', 'a socket'... for a ``st_mode`` that is not a regular file's."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _open_fd(path) -> int:
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a folder, not an image file") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot open the file ({err.strerror or err})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError(path, f"is {what_is(st.st_mode)}, not a photo file; nothing was read from it")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: ordinary reads from here on
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_regular(path) -> os.stat_result:
    """The ``fstat`` of ``path`` when it is a regular file; ImageReadError naming what it is otherwise."""
    fd = _open_fd(path)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_regular(path) -> Iterator[BinaryIO]:
    """``open(path, "rb")`` for regular files only (see the module's docstring)."""
    with os.fdopen(_open_fd(path), "rb") as fh:
        yield fh


def read_regular(path, limit: int | None = None) -> bytes | None:
    """The whole content of the regular file ``path``; None when it is larger than ``limit`` bytes."""
    with open_regular(path) as fh:
        if limit is not None and os.fstat(fh.fileno()).st_size > limit:
            return None
        return fh.read()


def file_sha256(path, chunk: int = 1 << 20) -> tuple[str, os.stat_result]:
    """The sha256 (hex) of the regular file ``path`` and its stat, both from one descriptor that never
    blocks on a FIFO or device.  A photo's content identity: the daemon's queue, the Ray ledger and
    the XMP record of each output (``truepix.outputs``) key "already done" on it."""
    import hashlib

    h = hashlib.sha256()
    with open_regular(path) as fh:
        st = os.fstat(fh.fileno())
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest(), st
