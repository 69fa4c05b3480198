"""Atomic output files: a destination either appears complete or not at all.

The output writers (``image.write_image``, ``dng.write_linear_dng``) fill a hidden temporary file beside
the destination inside ``with output(dest, overwrite=...) as tmp:``; on success that file is fsynced,
published under the destination's name (a hard link that never clobbers a file made meanwhile, or a
rename when overwriting or where the file system has no hard links) and the folder is fsynced; on any
failure the temporary file is removed and the error becomes an ``ImageWriteError`` that says why in
words (folder missing, permission denied, disk full...).

Temp names are ``.NAME.truepix-tmp-`` and 8 hex digits (``temp_prefix``); ``remove_temp_files`` finds
the ones a killed writer left by that exact name.  ``fit_name`` keeps a file name within NAME_MAX bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import secrets
from collections.abc import Iterator

from ..errors import ImageWriteError

NAME_MAX = 255  # bytes in one file name (ext4, XFS, Btrfs, APFS; NTFS allows 255 UTF-16 units, never fewer)
TEMP_MARK = ".truepix-tmp-"
_TOKEN_LEN = 8  # hex digits of the random part of a temp name


def refuse_existing(dest: pathlib.Path, overwrite: bool) -> None:
    """ImageWriteError "file already exists" when ``dest`` is taken and ``overwrite`` is not given
    (checked before the work of encoding; ``publish`` checks again, atomically)."""
    if not overwrite and os.path.lexists(dest):
        raise ImageWriteError(dest, "file already exists")


def publish(tmp: pathlib.Path, dest: pathlib.Path, overwrite: bool) -> None:
    """Give the finished ``tmp`` the name ``dest``; ImageWriteError when ``dest`` exists and not ``overwrite``."""
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # atomic "create if absent": never clobbers a file made meanwhile
    except FileExistsError:
        raise ImageWriteError(dest, "file already exists") from None
    except OSError:  # file systems without hard links (FAT, some network shares)
        if os.path.lexists(dest):
            raise ImageWriteError(dest, "file already exists") from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)


def fsync_file(path: pathlib.Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def fsync_dir(folder: pathlib.Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename already happened
    finally:
        os.close(fd)


@contextlib.contextmanager
def output(dest: pathlib.Path, *, overwrite: bool, tmp: pathlib.Path | None = None) -> Iterator[pathlib.Path]:
    """Yield a fresh temp path beside ``dest`` (``temp_path``; or ``tmp``, a temp file the caller
    already made and filled) for the caller to create and fill;
    when the block ends without error: fsync it, ``publish`` it as ``dest``, fsync the folder.

    On any failure (in the block or in publishing) the temp file is removed; an ImageWriteError
    passes unchanged, another Exception becomes an ImageWriteError saying why, anything else
    (KeyboardInterrupt) is re-raised as it is.  ``fsync_file`` and ``publish`` are looked up when
    used, so a test can replace them to inject a full disk or a crash.
    """
    tmp = temp_path(dest) if tmp is None else tmp
    try:
        yield tmp
        fsync_file(tmp)
        publish(tmp, dest, overwrite)
        fsync_dir(dest.parent)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, ImageWriteError):
            raise
        if isinstance(err, Exception):
            raise ImageWriteError(dest, why(err, dest)) from err
        raise


def why(err: Exception, dest: pathlib.Path) -> str:
    """A failed write's reason in words (folder missing, permission denied, disk full...)."""
    if isinstance(err, FileNotFoundError):
        return f"folder does not exist: {dest.parent}"
    if isinstance(err, NotADirectoryError):
        return f"not a folder: {dest.parent}"
    if isinstance(err, PermissionError):
        return f"permission denied in {dest.parent}"
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return "disk full"
    return f"{type(err).__name__}: {err}"


# -- file names ----------------------------------------------------------------------------------

def _name_bytes(name: str) -> int:
    return len(os.fsencode(name))


def fit_name(stem: str, tail: str, limit: int = NAME_MAX) -> str:
    """``stem + tail``, with ``stem`` cut short (whole characters) when the name would exceed ``limit``
    bytes; ``tail`` (suffix, extension) is always kept.  ValueError when not even one character of
    the stem fits."""
    if _name_bytes(stem + tail) <= limit:
        return stem + tail
    budget = limit - _name_bytes(tail)
    while stem and _name_bytes(stem) > budget:
        stem = stem[: max(1, len(stem) - max(1, (_name_bytes(stem) - budget) // 4))]
    if not stem:
        raise ValueError(f"{tail!r} alone is longer than a file name may be ({limit} bytes)")
    return stem + tail


def temp_prefix(dest) -> str:
    """How every temp file name a writer uses for ``dest`` starts: ``.NAME.truepix-tmp-`` (then 8 hex
    digits).  A NAME too long to take those 22 bytes within NAME_MAX is cut short and followed by
    ``~`` and 8 hex digits of its hash (two long names that share a start keep apart)."""
    name = pathlib.Path(dest).name
    prefix = f".{name}{TEMP_MARK}"
    if _name_bytes(prefix) + _TOKEN_LEN <= NAME_MAX:
        return prefix
    import hashlib

    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    return fit_name("." + name, f"~{digest}{TEMP_MARK}", NAME_MAX - _TOKEN_LEN)


def temp_path(dest) -> pathlib.Path:
    """A fresh temp file name beside ``dest`` (hidden, at most NAME_MAX bytes, see ``temp_prefix``)."""
    dest = pathlib.Path(dest)
    return dest.with_name(temp_prefix(dest) + secrets.token_hex(_TOKEN_LEN // 2))


def remove_temp_files(dest) -> list[pathlib.Path]:
    """Delete the temp files a killed writer left for ``dest``; returns those removed.

    An exact match on the name (no glob: ``[``, ``*`` or ``?`` in a photo's name are plain characters)."""
    dest = pathlib.Path(dest)
    prefix = temp_prefix(dest)
    removed = []
    try:
        names = os.listdir(dest.parent)
    except OSError:
        return removed
    for name in names:
        token = name[len(prefix):]
        if name.startswith(prefix) and len(token) == _TOKEN_LEN and all(c in "0123456789abcdef" for c in token):
            try:
                os.unlink(dest.parent / name)
                removed.append(dest.parent / name)
            except OSError:
                pass
    return removed
