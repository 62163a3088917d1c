"""Files opened and written without surprises, for the model files and the CSV files alike.

Reading: :func:`open_regular` checks the file it has *opened*, not the path before opening, so a
path swapped for a FIFO between a check and the open cannot block the process.

Writing: :func:`atomic_write` writes to a temporary file in the target's folder and renames it
over the target, removing it on any failure. A process killed outright (SIGKILL, the OOM
killer, a power cut) runs no clean-up, so each temporary file's name holds its writer's process
id, ``.{target name}.{pid}.{8 hex digits}.tmp``, and every save to a target first removes the
temporary files of that target whose writer no longer runs. Nothing else is ever removed: only
names of exactly that pattern, for that target, that are regular files of a dead process.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

# A FIFO opened without O_NONBLOCK waits for a writer; with it, the open returns at once.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def open_regular(path, refuse: Callable[[os.stat_result], Exception],
                 buffering: int = -1) -> BinaryIO:
    """``path`` opened for binary reading, if what was opened is a regular file.

    ``refuse(stat)`` makes the exception raised for anything else (a FIFO, a device, a folder):
    the check is made on the opened descriptor, so nothing can be swapped in after it.
    """
    descriptor = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise refuse(info)
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb", buffering=buffering)
    except BaseException:
        os.close(descriptor)
        raise


def folder_of(path: Path) -> Path:
    """The folder holding ``path`` (``.`` for a bare file name)."""
    return path.parent if str(path.parent) else Path(".")


def _temporary_pattern(path: Path) -> re.Pattern:
    return re.compile(rf"\.{re.escape(path.name)}\.([1-9][0-9]{{0,9}})\.[0-9a-f]{{8}}\.tmp")


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts; so does any doubt)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate it on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: it runs under another user
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left; returns them.

    A process id may be reused: a stale file whose id now names another running process is
    kept until that process ends (never a file being written).
    """
    pattern, removed = _temporary_pattern(path), []
    try:
        entries = list(os.scandir(folder_of(path)))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or int(match[1]) == os.getpid() or _running(int(match[1])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_write(path, *, mode: int | None = None,
                 before_replace: Callable[[], object] | None = None) -> Iterator[BinaryIO]:
    """A binary stream whose content replaces ``path`` only when the block succeeds.

    The data is flushed to disk before the rename, so a crash leaves either the old file or
    the new one. ``mode`` sets the permission bits (else ``0o666`` less the umask);
    ``before_replace`` is called just before the rename (a last check of the target).
    """
    path = Path(path)
    remove_stale_temporaries(path)
    temporary = folder_of(path) / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: never follow or reuse an existing entry.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(temporary, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
