"""A run's output folder: checked before any data are loaded, locked while a run writes into it,
never overwritten silently, and every failed write reported with its path.

The lock is ``.mireg.lock`` in the folder, held with ``flock`` by the writing process and holding
its pid, host and start time. The kernel releases it when the process ends however it ends, so a
lock left behind by a killed run is free again at once; the file itself only names the holder.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

from mireg.errors import OutputError
from mireg.files import atomic_write

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
RESULTS = "results.json"
LOCK = ".mireg.lock"
#: What a run writes; a fresh run refuses a folder holding any of them unless forced.
RUN_FILES = (CHECKPOINT, METRICS, RESULTS, CURVES)


def check_out(out: Path, *, resume: bool = False, force: bool = False) -> None:
    """Raise :class:`~mireg.errors.OutputError` unless a run could write into ``out`` now.

    ``out`` (or, when it does not exist yet, its nearest existing parent) must be a writable
    folder, no other run may hold its lock, a fresh run (neither ``resume`` nor ``force``) needs
    a folder without run files, and ``resume`` needs a checkpoint. Nothing is created.
    """
    if resume and force:
        raise OutputError("--resume continues the run in --out and --force overwrites it: pass one of them")
    existing = next(folder for folder in (out, *out.parents) if folder.exists() or folder == folder.parent)
    if not existing.is_dir():
        where = f"--out {out} is a file" if existing == out else f"{existing} is a file, so --out {out} cannot be made"
        raise OutputError(f"{where}; choose a folder path for --out")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".mireg-probe-"):
            pass
    except OSError as error:
        raise OutputError(f"cannot write in {existing} ({error.strerror or error}); choose a writable --out") from None
    if existing != out:
        return
    holder = _holder(out / LOCK)
    if holder is not None:
        raise OutputError(
            f"{out} is in use by another mireg run ({holder}); wait for it to end or choose another --out"
        )
    present = [name for name in RUN_FILES if (out / name).exists()]
    if resume and CHECKPOINT not in present:
        raise OutputError(f"no checkpoint at {out / CHECKPOINT}; start the run without --resume")
    if present and not resume and not force:
        advice = "pass --resume to continue it, " if CHECKPOINT in present else ""
        raise OutputError(
            f"{out} already holds a run ({', '.join(present)}); {advice}pass --force to overwrite it, "
            "or choose another --out"
        )


@contextmanager
def claimed(out: Path, *, resume: bool = False, force: bool = False) -> Iterator[None]:
    """Check ``out`` (:func:`check_out`), create it, hold its lock for the ``with`` block and,
    with ``force``, remove the previous run's files first."""
    check_out(out, resume=resume, force=force)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create --out {out} ({error.strerror or error})") from None
    handle = _lock(out / LOCK)
    try:
        if force:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
        yield
    finally:
        (out / LOCK).unlink(missing_ok=True)  # still held: no other process can have taken it
        handle.close()


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """:func:`mireg.files.atomic_write` for a run's output: an ``OSError`` while writing ``path`` (a full
    disk) becomes an :class:`OutputError` naming it; the write is atomic, so the previous file is intact."""
    try:
        atomic_write(path, write)
    except OSError as error:
        raise OutputError(
            f"cannot write {path} ({error.strerror or error}); its previous version, if any, is intact. "
            "Free space (or fix the folder), then continue with --resume if --out holds a checkpoint"
        ) from None


def _lock(path: Path) -> IO[str]:
    """Open and ``flock`` ``path`` for this process and write who holds it; the open file keeps the lock."""
    import fcntl

    while True:
        try:
            handle = open(path, "a+", encoding="utf-8")  # held open for the whole run
        except OSError as error:
            raise OutputError(f"cannot write {path} ({error.strerror or error}); choose a writable --out") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            holder = _holder(path) or "its details are not written yet"
            raise OutputError(
                f"{path.parent} is in use by another mireg run ({holder}); wait for it to end or choose another --out"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file that its previous holder removed between our open and our flock
            break
        handle.close()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    handle.truncate(0)
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}) + "\n")
    handle.flush()
    return handle


def _holder(path: Path) -> str | None:
    """Who holds the lock at ``path`` (``"pid 12, host h, started t"``), or ``None`` when it is free."""
    import fcntl

    try:
        handle = open(path, encoding="utf-8")  # closed by the with below
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                record = json.loads(handle.read())
                return f"pid {record['pid']} on host {record['host']}, started {record['started']}"
            except (ValueError, KeyError, TypeError):
                return "its details are not written yet"
        return None
