"""Photo lists: the one folder scanner and the one list reader, for colorizing, training and evaluation.

:func:`find_photos` walks a folder the same way for every command: recursively, sorted (so a
split or a batch is the same on every machine), files only, never into hidden files or folders
(``.git/``, macOS's ``._photo.jpg`` resource forks, editors' ``.~lock`` files) and never through
symbolic links to folders (a link back to a parent would recurse for ever). :func:`read_list`
reads a file list such as a run's ``split/test.txt``. Both raise :class:`DataError` with a
one-line reason naming the folder or list.

Example:
    >>> find_photos("scans/")                                # doctest: +SKIP
    [PosixPath('scans/1921/wedding.jpg'), PosixPath('scans/mother.png')]
    >>> read_list("runs/mine/split/test.txt")[:1]             # doctest: +SKIP
    [PosixPath('/data/places/abbey/00000001.jpg')]
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from dlnet.errors import DLNetError
from dlnet.io.imageio import IMAGE_SUFFIXES

__all__ = ["DataError", "VIDEO_SUFFIXES", "find_photos", "is_hidden", "read_list"]

# The suffixes planned as videos (dlnet.infer.video reads them with PyAV), beside IMAGE_SUFFIXES
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpeg", ".mpg", ".m2v", ".ts", ".mts",
                  ".m2ts", ".wmv", ".flv", ".ogv", ".3gp", ".vob", ".dv"}


class DataError(DLNetError, ValueError):
    """A photo folder, file list or split that cannot be used: one line naming it and why."""


def is_hidden(path: Path, root: Path | None = None) -> bool:
    """Whether any part of ``path`` (relative to ``root`` when given) starts with a dot.

    Example:
        >>> is_hidden(Path("album/.thumbs/a.jpg")), is_hidden(Path("../album/a.jpg"), Path(".."))
        (True, False)
    """
    parts = path.relative_to(root).parts if root is not None else path.parts
    return any(p.startswith(".") and p not in (".", "..") for p in parts)


def find_photos(root: str | Path, suffixes: Collection[str] = IMAGE_SUFFIXES, exclude: Path | None = None) -> list[Path]:
    """The files under the folder ``root`` (recursive) whose lower-case suffix is in
    ``suffixes``, sorted, hidden names and files under ``exclude`` (an output folder inside
    ``root``, say) left out. Raises :class:`DataError` if ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    exclude = exclude.resolve() if exclude is not None else None
    found = []
    for f in root.rglob("*"):  # pathlib's ** does not follow symbolic links to folders
        if f.suffix.lower() not in suffixes or is_hidden(f, root) or not f.is_file():
            continue
        if exclude is not None and f.resolve().is_relative_to(exclude):
            continue
        found.append(f)
    return sorted(found)


def read_list(path: str | Path) -> list[Path]:
    """Paths from a file list, one per line (blank lines ignored); relative lines are relative
    to the list's folder. Raises :class:`DataError` if the list cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read this file list ({getattr(e, 'strerror', None) or e})") from None
    lines = [ln.strip() for ln in text.splitlines()]
    return [p if p.is_absolute() else path.parent / p for p in map(Path, filter(None, lines))]
