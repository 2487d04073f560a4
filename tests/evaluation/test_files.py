"""Output files: atomic writers under a full disk, the umask's permissions, non-regular files refused without
hanging, and the exclusive lock on an output folder."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys

import pytest

from art_seg import _files


class _FullDisk:
    """A file object whose ``write`` stores half the data and then fails as a full disk does."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


class _Figure:
    def savefig(self, handle, **kwargs):
        handle.write(b"new figure bytes")


WRITERS = {
    "bytes": lambda path: _files.atomic_write_bytes(path, b"new content"),
    "text": lambda path: _files.atomic_write_text(path, "new content\n"),
    "figure": lambda path: _files.atomic_savefig(_Figure(), path),
}


def _fail_on_write(monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: _FullDisk(real(*args, **kwargs)))


def _fail_on(name):
    def patch(monkeypatch):
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, name, full)

    return patch


FAILURES = {"write": _fail_on_write, "fsync": _fail_on("fsync"), "replace": _fail_on("replace")}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_full_disk_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch, writer, failure) -> None:
    target = tmp_path / "report.png"
    target.write_bytes(b"previous report")
    FAILURES[failure](monkeypatch)
    with pytest.raises(OSError, match="No space left on device"):
        WRITERS[writer](target)
    monkeypatch.undo()
    assert target.read_bytes() == b"previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]
    WRITERS[writer](target)  # and with room again, the new content replaces it
    assert target.read_bytes() != b"previous report"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_umask_permissions(tmp_path, umask) -> None:
    previous = os.umask(umask)
    try:
        paths = [writer(tmp_path / f"{name}.out") for name, writer in WRITERS.items()]
        with _files.open_append(tmp_path / "results.jsonl") as sink:
            sink.write("{}\n")
        paths.append(tmp_path / "results.jsonl")
    finally:
        os.umask(previous)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


def test_open_append_appends_and_refuses_non_regular_files_without_blocking(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    for line in ("a\n", "b\n"):
        with _files.open_append(path) as sink:
            sink.write(line)
    assert path.read_text() == "a\nb\n"
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)  # nobody reads it: opening it for writing would block forever
    with pytest.raises(ValueError, match=r"'.*fifo.jsonl' is not a regular file \(a FIFO\)"):
        _files.open_append(fifo)
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(ValueError, match=r"'.*folder.jsonl' is not a regular file \(a folder\)"):
        _files.open_append(tmp_path / "folder.jsonl")
    with pytest.raises(ValueError, match=r"'/dev/null' is not a regular file \(a device\)"):
        _files.check_regular_file("/dev/null")
    _files.check_regular_file(tmp_path / "missing")  # what does not exist yet may be created


def test_a_second_lock_on_a_folder_is_refused_until_the_first_is_released(tmp_path) -> None:
    with _files.folder_lock(tmp_path):
        # a second open of the lock file in the same process conflicts as another process's would
        with pytest.raises(ValueError, match=rf"output folder '{tmp_path}' is in use by another run \(process "):
            with _files.folder_lock(tmp_path):
                pass
    with _files.folder_lock(tmp_path):  # released: free again
        pass


def test_a_lock_held_by_another_process_is_refused(tmp_path) -> None:
    lock = tmp_path / _files.LOCK_NAME
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(ValueError, match="is in use by another run"):
            with _files.folder_lock(tmp_path):
                pass
    finally:
        holder.stdin.close()  # the holder exits, which releases its lock
        holder.wait()
    with _files.folder_lock(tmp_path):
        pass
