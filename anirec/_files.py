"""Files opened and written without surprises, for the model files and the CSV files alike.

Reading: :func:`open_regular` checks the file it has *opened*, not the path before opening, so a
path swapped for a FIFO between a check and the open cannot block the process.

Writing: every output, a model or a CSV file, obeys one rule. :func:`check_target` refuses to
replace anything but a regular file (a symbolic link, a device, a FIFO, a socket, a folder);
:func:`same_file` says whether two paths name one file however they are spelt (resolved
paths, or the device and inode of existing files: a symbolic link to a folder or
``/proc/self/cwd`` gives no second name); :func:`check_writable_folder` creates a file where
an output will go; :func:`atomic_write` writes to a temporary file in the target's folder and
renames it over the target, removing it on any failure (a full disk included, reported as
:class:`~anirec.errors.OutputError`). A process killed outright (SIGKILL, the OOM
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

from anirec.errors import AnirecError, OutputError

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


def same_file(first, second) -> bool:
    """Whether the paths ``first`` and ``second`` name the same file: the same resolved path
    (symbolic links anywhere in them followed; the file need not exist), or two existing
    entries with the same device and inode (hard links, bind mounts)."""
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        one, other = os.stat(first), os.stat(second)
    except (OSError, ValueError):
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def check_target(path, what: str = "the output",
                 error: type[OutputError] = OutputError) -> int | None:
    """The permission bits of the regular file ``path`` an output replaces; ``None`` when it
    does not exist yet.

    Raises :class:`~anirec.errors.OutputError` for anything else: replacing a symbolic link
    would leave its target unchanged, and a device (``/dev/null``), a FIFO, a socket or a
    folder would become a regular file.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as failure:
        raise error(f"cannot write {what} to {_quoted(path)}: {_reason(failure)}") from None
    if stat.S_ISLNK(info.st_mode):
        raise error(f"refusing to write {what} over {_quoted(path)}: it is a symbolic link")
    if stat.S_ISDIR(info.st_mode):
        raise error(f"cannot write {what} to {_quoted(path)}: it is a folder")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"refusing to write {what} over {_quoted(path)}: it is not a regular "
                    "file (a device, a pipe or a socket)")
    return stat.S_IMODE(info.st_mode)


def check_writable_folder(folder, what: str = "the output") -> None:
    """Refuse a folder in which no file can be created, by creating (and removing) one: the
    permission bits do not tell (``/proc`` looks writable to root, a read-only mount too)."""
    probe = Path(folder) / f".anirec-probe.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600)
    except OSError as error:
        raise OutputError(f"cannot write {what} in {_quoted(folder)}: "
                          f"{_reason(error)}") from None
    os.close(descriptor)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _quoted(path) -> str:
    return repr(str(path))


def _reason(error: OSError) -> str:
    """What went wrong, in words (``No space left on device``), without the errno."""
    return (error.strerror or str(error) or type(error).__name__).lower()


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
                 before_replace: Callable[[], object] | None = None,
                 what: str = "the output",
                 error: type[OutputError] = OutputError) -> Iterator[BinaryIO]:
    """A binary stream whose content replaces ``path`` only when the block succeeds.

    The data is flushed to disk before the rename, so a crash leaves either the old file or
    the new one. ``mode`` sets the permission bits (else ``0o666`` less the umask);
    ``before_replace`` is called just before the rename (a last check of the target).

    Raises
    ------
    OutputError
        (or ``error``) When writing fails for want of room (a full disk, a file-size limit)
        or another input/output error, naming ``what`` and ``path``; the temporary file is
        removed. ``PermissionError`` (the folder's) and the caller's own errors pass
        unchanged.
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
    except BaseException as failure:  # KeyboardInterrupt too: never leave the temporary file
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(failure, OSError) and not isinstance(
                failure, (AnirecError, PermissionError, BrokenPipeError)):
            raise error(f"cannot write {what} to {_quoted(path)}: "
                        f"{_reason(failure)}") from None
        raise
