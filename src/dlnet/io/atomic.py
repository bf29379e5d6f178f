"""Atomic file writing: the one helper behind every file dlnet writes whole (images, models, ONNX).

The content goes to a temporary file in the target's folder, which is renamed over the target
only once complete: an interrupted run never leaves half a file under the real name, and an
existing file stays as it was until the new one is whole. The temporary name is short and fixed
in length (``.dlnet-XXXXXXXX.tmp``), so any valid target name works, up to the 255-byte limit of
most file systems; it is hidden, and removed when writing fails.

Example:
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_open(folder / "notes.txt", "w") as f:
    ...     _ = f.write("all or nothing")
    >>> with atomic_path(folder / "weights.bin") as tmp:   # for libraries that want a path
    ...     _ = tmp.write_bytes(b"...")
    >>> sorted(p.name for p in folder.iterdir())
    ['notes.txt', 'weights.bin']
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_open"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it goes.

    ``suffix`` ends the temporary name, for writers that insist on one (``np.savez``: ``.npz``).
    The file gets the permissions a newly created file would (``0o666`` less the umask).
    Raises ``OSError`` as the file system does (no space, no permission, ...).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=".dlnet-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator:
    """``open(path, mode)`` that writes atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
