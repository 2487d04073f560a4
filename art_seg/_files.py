"""Output files: atomic writes, appends that refuse anything but a regular file, and an output folder's lock.

Each atomic writer writes a temporary file in the destination's folder (so the rename stays on one file system),
flushes and syncs it, then ``os.replace``-s it onto the destination: a reader sees the old file or the complete
new one, never a partial file. On any error (a full disk included) the temporary file is removed and the
destination is left as it was. Temporary names start with ``.<name>.`` and end with ``.tmp``.

Every file made here gets the usual permissions (``0o666`` less the umask), not the ``0o600`` of
:mod:`tempfile`. A destination that exists but is not a regular file (a FIFO, a device, a folder) is refused with
a ``ValueError`` before it is opened, so that nothing blocks on a FIFO nobody reads.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from art_seg._checks import check_type

__all__ = [
    "LOCK_NAME",
    "atomic_savefig",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_files",
    "atomic_write_text",
    "check_regular_file",
    "folder_lock",
    "open_append",
    "writable_folder",
]

PathLike = str | os.PathLike[str]

#: the lock file of an output folder (see :func:`folder_lock`)
LOCK_NAME = ".art-seg.lock"

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"


def check_regular_file(path: PathLike) -> None:
    """Refuse ``path`` if it exists and is not a regular file (after following symbolic links).

    Raises:
        ValueError: it is a FIFO, a device, a socket or a folder (names the path and what it is).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise ValueError(f"{str(path)!r} is not a regular file ({_kind(mode)}); move it away or use another folder")


def read_json_object(path: PathLike) -> dict:
    """The JSON object in the UTF-8 file ``path`` (another tool's configuration: an nnU-Net plans file, a MONAI
    bundle's config).

    Raises:
        ValueError: naming the file: unreadable, not UTF-8, not JSON, or JSON that is not an object.
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read as JSON ({type(error).__name__}: {error})") from error
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(content).__name__}")
    return content


def open_append(path: PathLike) -> IO[str]:
    """Open ``path`` for appending UTF-8 text, creating it (with the umask's permissions) if needed.

    A FIFO, device or folder of that name is refused, never opened in a way that could block.

    Raises:
        ValueError: ``path`` is not a regular file (see :func:`check_regular_file`).
        OSError: it cannot be opened (e.g. no permission).
    """
    check_regular_file(path)
    # O_NONBLOCK: a FIFO put there since the check fails to open (ENXIO) instead of waiting for a reader
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags, 0o666)
    except OSError:
        check_regular_file(path)
        raise
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise ValueError(f"{str(path)!r} is not a regular file ({_kind(mode)}); move it away or use another folder")
    return os.fdopen(descriptor, "a", encoding="utf-8")


@contextmanager
def folder_lock(folder: PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on an output folder for the ``with`` block: one writer at a time.

    The lock is ``flock`` on ``folder/.art-seg.lock`` (created if needed and left in place; it holds the process
    id and host of the last holder, for the message). It is released when the block ends or the process dies,
    even by ``kill -9``. It is per open file, so a second lock on the same folder fails in the same process too.
    POSIX only.

    Yields:
        The lock file's path.

    Raises:
        ValueError: another holder has it (names the folder and the holder); the folder is left untouched.
    """
    import fcntl  # POSIX; imported here so that the rest of the module imports everywhere

    path = Path(folder) / LOCK_NAME
    check_regular_file(path)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            raise ValueError(
                f"output folder {str(folder)!r} is in use by another run ({holder}); wait for it to end, "
                "or use another output folder"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(descriptor)


def _open_temporary(path: Path) -> tuple[Path, IO[bytes]]:
    """A new, empty temporary file next to ``path``, opened for binary writing."""
    for _ in range(100):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return temporary, os.fdopen(descriptor, "wb")
    raise FileExistsError(f"could not create a temporary file next to {str(path)!r}")


def _sync_folder(folder: Path) -> None:
    """Best effort: make the rename durable (POSIX); silently skipped where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically with ``write(handle)`` on a binary file handle (see the module docstring)."""
    path = Path(path)
    temporary, handle = _open_temporary(path)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    return path


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        path: destination file; its folder must exist.
        data: the complete new content.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: if the folder does not exist or is not writable (the destination is then unchanged).
    """
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, encoded with ``encoding`` and with line endings as given.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> atomic_write_text(Path(folder) / "run.json", "{}\\n").read_text()
        '{}\\n'
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_savefig(fig: Any, path: PathLike, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure to ``path`` atomically.

    Args:
        fig: a ``matplotlib.figure.Figure`` (anything with ``savefig(file, format=..., ...)``).
        path: destination file.
        **savefig_kwargs: passed to ``fig.savefig``; ``format`` defaults to the suffix of ``path`` (``"png"``
            when it has none), since the temporary file's name says nothing about it.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    savefig_kwargs.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    return atomic_write(path, lambda handle: fig.savefig(handle, **savefig_kwargs))


def writable_folder(output_dir: Any) -> Path:
    """Create ``output_dir`` if needed and check it can be written, before any work starts.

    Raises:
        ValueError: it cannot be created or written (names the folder and why).
        TypeError: not a path.
    """
    check_type("output_dir", output_dir, (str, os.PathLike))
    folder = Path(output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"output folder {str(folder)!r} is not writable: {error}") from error
    return folder


def atomic_write_files(files: Mapping[PathLike, bytes]) -> list[Path]:
    """Write several files as one step: no destination is replaced unless every new file was written completely.

    Each content is first written to a temporary file next to its destination (flushed and synced); only when
    all are complete are they renamed onto their destinations, in the order given (put the file whose presence
    marks a complete set, e.g. ``report.md``, last). A full disk, a read-only folder or any other error while
    writing leaves every destination as it was and removes every temporary file. The renames need no space; an
    error in them (the destination folder vanished, say) can leave the files before it replaced.

    Args:
        files: destination path -> complete new content; each destination's folder must exist.

    Returns:
        The destinations as :class:`~pathlib.Path`, in order.

    Raises:
        OSError: the first write error, re-raised with the destination's path as ``filename`` (an error while
            writing data carries no file name of its own, and the temporary file's name would mislead).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> [p.name for p in atomic_write_files({folder / "a.csv": b"x\\n", folder / "a.md": b"# a\\n"})]
        ['a.csv', 'a.md']
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for destination, data in files.items():
            destination = Path(destination)
            try:
                temporary, handle = _open_temporary(destination)
                staged.append((temporary, destination))
                with handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as error:
                if error.errno is None:
                    raise
                raise OSError(error.errno, error.strerror, str(destination)) from error
        for temporary, destination in staged:
            os.replace(temporary, destination)
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(destination.parent for _, destination in staged):
        _sync_folder(folder)
    return [destination for _, destination in staged]
