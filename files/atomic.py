"""Atomic writes: a file (or a set of files) is either complete or absent, never half-written.

Each file is written to a temp file beside it and renamed into place (a rename within one folder
is atomic on POSIX); on any failure the temp files are removed. The project's one atomic writer.
"""
import os
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_file(path):
    """Open a file for writing so that it is either complete or absent: a temp file beside it,
    renamed into place on success, removed on any failure. Mode 0666 minus the umask, as
    open() (and spm_train) would give, not mkstemp's 0600. The project's one atomic writer."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_atomic(path, data: bytes) -> None:
    """Write bytes to a file so that it is either complete or absent."""
    with atomic_file(path) as f:
        f.write(data)


def write_all(files: dict[str, bytes]) -> None:
    """Write several files all or nothing: every target checked, every temp file written, then all
    renamed into place; on any failure none of them is left (OSError names the file that failed)."""
    for path in files:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "is a directory", path)
    temps, placed = {}, []
    try:
        for path, data in files.items():
            folder = os.path.dirname(os.path.abspath(path))
            try:
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            except OSError as e:
                raise type(e)(e.errno, e.strerror, path) from None
            temps[path] = tmp
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        for path, tmp in temps.items():
            os.replace(tmp, path)
            placed.append(path)
    except BaseException:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        for path in placed:
            os.unlink(path)
        raise
