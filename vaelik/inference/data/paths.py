"""Opening a data file safely: only regular files are read (a FIFO would block for ever)."""

from __future__ import annotations

import os
import stat

from vaelik.errors import InputError

__all__ = ["require_regular_file"]

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def require_regular_file(path: str | os.PathLike, what: str = "data file") -> None:
    """Raise :class:`InputError` unless ``path`` is a regular file (links are followed).

    A FIFO, a socket or a device is refused before it is opened: reading one
    would wait for a writer or never end.

    >>> require_regular_file("/dev/null")
    Traceback (most recent call last):
    ...
    vaelik.errors.InputError: data file /dev/null is a character device, not a regular file; give a .npy, .npz or IDX file
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise InputError(f"cannot read {what} {path} ({e.strerror or e}); check its "
                         "permissions") from None
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    raise InputError(f"{what} {path} is {kind}, not a regular file; give a .npy, .npz or IDX file")
