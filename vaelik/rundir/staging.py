r"""All-or-nothing replacement of a set of run-directory files (the evaluation files).

One file is replaced atomically by ``os.replace``; a *set* of files is not: a
process killed between two renames would leave some files of the old
evaluation beside some of the new. So an evaluation writes its files into a
hidden staging folder inside the run directory, and then:

1. writes ``.staging/COMMIT`` (atomically, after every staged file is flushed):
   from this moment the staged set **is** the run's evaluation;
2. moves each staged file onto its name in the run directory (``os.replace``),
   removes the files of the set that the new evaluation does not have, and
3. removes the staging folder.

A kill before step 1 leaves the old set untouched (the staging folder is
debris); a kill during step 2 leaves a committed staging folder. Readers see
one consistent set in both cases: :func:`resolve` sends a read of a file of the
set to the committed staging folder while it holds that file. The next
evaluation, resume or training of the run calls :func:`recover`, which finishes
a committed swap (roll forward) or removes an uncommitted one, and removes the
``.<name>.<random>.tmp`` files a killed atomic write left behind.
Torch-free: standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from vaelik.rundir.schema import EVALUATION_FILES, STAGING_DIR

__all__ = ["COMMIT_FILE", "Staging", "recover", "resolve", "staged_set"]

#: the commit record inside the staging folder: JSON ``{"files": [...], "set": [...]}``
COMMIT_FILE = "COMMIT"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system can sync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _committed(run_dir: Path) -> dict | None:
    """The commit record of ``run_dir``'s staging folder; None when there is no valid one."""
    try:
        record = json.loads((run_dir / STAGING_DIR / COMMIT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("files"), list)
            and isinstance(record.get("set"), list)):
        return None
    names = [*record["files"], *record["set"]]
    if not all(isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in names):
        return None
    return record


def resolve(path: str | os.PathLike) -> Path:
    """Where to read ``path``, a file of a run directory, now.

    The file in a committed but not yet finished swap (the staging folder of
    ``path``'s folder, while it still holds the file); ``path`` itself otherwise.
    A file of the committed set that the new evaluation does not have resolves
    to its (absent) staged name, so it reads as missing.

    Examples
    --------
    >>> resolve("/no/such/run/eval.json")
    PosixPath('/no/such/run/eval.json')
    """
    path = Path(path)
    staging = path.parent / STAGING_DIR
    if not (staging / COMMIT_FILE).exists():  # the common case: one stat
        return path
    record = _committed(path.parent)
    if record is None or path.name not in record["set"]:
        return path
    staged = staging / path.name
    if path.name in record["files"] and staged.exists():
        return staged
    if path.name not in record["files"]:
        return staged  # the new evaluation has no such file: it reads as missing
    return path


def staged_set(run_dir: str | os.PathLike) -> list[str] | None:
    """The files of a committed, unfinished swap in ``run_dir``; None when there is none."""
    record = _committed(Path(run_dir))
    return None if record is None else list(record["files"])


def _remove_temporaries(folder: Path) -> None:
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def recover(run_dir: str | os.PathLike) -> str | None:
    """Leave ``run_dir`` with one consistent evaluation set and no debris.

    A committed swap is finished (its staged files moved into place, the files
    of the set it lacks removed); an uncommitted staging folder is removed; so
    are the ``.*.tmp`` files of interrupted atomic writes.

    Returns
    -------
    str or None
        ``"rolled forward"``, ``"discarded"`` or None (nothing to do), for tests and logs.
    """
    run_dir = Path(run_dir)
    staging = run_dir / STAGING_DIR
    done = None
    if staging.is_dir() or staging.is_symlink():
        record = _committed(run_dir) if staging.is_dir() and not staging.is_symlink() else None
        if record is not None:
            _swap(run_dir, staging, record)
            done = "rolled forward"
        else:
            done = "discarded"
        _remove(staging)
    elif staging.exists():  # a file in the way of the folder
        _remove(staging)
        done = "discarded"
    _remove_temporaries(run_dir)
    return done


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _swap(run_dir: Path, staging: Path, record: dict) -> None:
    for name in record["files"]:
        staged = staging / name
        if staged.exists():
            os.replace(staged, run_dir / name)
    for name in record["set"]:
        if name not in record["files"]:
            with contextlib.suppress(FileNotFoundError):
                (run_dir / name).unlink()
    _fsync_dir(run_dir)


class Staging:
    """Stage files in a run directory and swap them in all at once.

    Use as a context manager: files are written to :meth:`path` (with the
    atomic writers of :mod:`vaelik.rundir.io`), then :meth:`commit` swaps them
    in. Leaving the block without a commit (an error) removes the staging
    folder and leaves the run directory as it was.

    Parameters
    ----------
    run_dir : path-like
        The run directory.
    fileset : iterable of str
        Every file name the set may hold (default
        :data:`~vaelik.rundir.schema.EVALUATION_FILES`): a name of the set that
        is not staged when committing is removed from the run directory.

    Examples
    --------
    >>> import tempfile
    >>> from vaelik.rundir import write_json
    >>> run = Path(tempfile.mkdtemp())
    >>> with Staging(run) as stage:
    ...     write_json(stage.path("eval.json"), {"elbo": -1.0})
    ...     stage.commit()
    >>> sorted(p.name for p in run.iterdir())
    ['eval.json']
    """

    def __init__(self, run_dir: str | os.PathLike, fileset: Iterable[str] = EVALUATION_FILES) -> None:
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / STAGING_DIR
        self.fileset = tuple(fileset)
        self.committed = False

    def __enter__(self) -> Staging:
        recover(self.run_dir)  # an earlier swap is finished (or its debris removed) first
        self.folder.mkdir()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            _remove(self.folder)

    def path(self, name: str) -> Path:
        """Where to write the staged file ``name`` (a name of the set)."""
        if name not in self.fileset:
            raise ValueError(f"{name} is not a file of the staged set {self.fileset}")
        return self.folder / name

    def staged(self) -> list[str]:
        """Names of the set written so far, in the set's order."""
        return [n for n in self.fileset if (self.folder / n).is_file()]

    def commit(self) -> None:
        """Swap the staged files in (the order of the set), then remove the staging folder."""
        files = self.staged()
        for name in files:  # flushed before the commit record says they are the truth
            with open(self.folder / name, "rb") as fh:
                os.fsync(fh.fileno())
        record = {"files": files, "set": list(self.fileset)}
        fd, tmp = tempfile.mkstemp(prefix=f".{COMMIT_FILE}.", suffix=".tmp", dir=self.folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / COMMIT_FILE)  # the commit point
        _fsync_dir(self.folder)
        self.committed = True
        _swap(self.run_dir, self.folder, record)
        _remove(self.folder)

