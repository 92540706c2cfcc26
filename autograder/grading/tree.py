"""A folder as data: what a grading task ships between machines, and what it hashes.

A parallel or distributed batch grades each student in a scratch copy of the course,
possibly on another machine, so a submission and the files grading produces travel as
``Tree``s: relative POSIX path -> the file's bytes, or a ``Link`` (a link is kept as a
link and never followed: a student's link may aim at ``/dev/zero``, the solutions or a
secret). Other special files (FIFOs, sockets, devices) are left out: reading a FIFO
would block the grader.

``digest`` names a tree's contents (paths, kinds and bytes), so that a batch run again
can tell an unchanged submission from a changed one. ``write_file`` replaces a file
atomically (a temporary file, then ``os.replace``), so that a grader killed while
writing leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Link", "Tree", "digest", "read_tree", "sync_tree", "write_file", "write_tree"]


@dataclass(frozen=True)
class Link:
    """A symbolic link, by its target, as ``os.readlink`` gives it."""

    target: str


Tree = dict[str, "bytes | Link"]


def read_tree(folder: Path) -> Tree:
    """The regular files and links under ``folder`` (empty when it does not exist),
    without following any link."""
    tree: Tree = {}
    if not folder.is_dir() or folder.is_symlink():
        return tree
    for directory, subdirs, files in os.walk(folder):
        base = Path(directory)
        for name in sorted(subdirs + files):
            path = base / name
            mode = path.lstat().st_mode
            relative = path.relative_to(folder).as_posix()
            if stat.S_ISLNK(mode):
                tree[relative] = Link(os.readlink(path))
            elif stat.S_ISREG(mode):
                tree[relative] = path.read_bytes()
        # os.walk does not descend into links to folders (followlinks=False): they are
        # recorded as links above.
    return dict(sorted(tree.items()))


def digest(tree: Tree) -> str:
    """A SHA-256 of the tree's paths, kinds and contents."""
    hasher = hashlib.sha256()
    for path, content in sorted(tree.items()):
        kind, data = (
            (b"L", content.target.encode()) if isinstance(content, Link) else (b"F", content)
        )
        for part in (path.encode(), kind, len(data).to_bytes(8, "big"), data):
            hasher.update(part)
    return hasher.hexdigest()


def write_file(path: Path, content: bytes | Link) -> None:
    """Write one file (or link) at ``path``, replacing what is there, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:40]}.", dir=path.parent)
    try:
        if isinstance(content, Link):
            os.close(handle)
            os.unlink(temporary)
            os.symlink(content.target, temporary)
        else:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


def write_tree(tree: Tree, folder: Path, replace: bool = False) -> None:
    """Write ``tree`` under ``folder``; with ``replace``, what else is there goes first."""
    if replace and (folder.is_dir() or folder.is_symlink()):
        if folder.is_symlink():
            folder.unlink()
        else:
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for relative, content in tree.items():
        write_file(_inside(folder, relative), content)


def _inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, refused when it leads out of ``folder`` (``..``, a link)."""
    target = folder / relative
    root, parent = folder.resolve(), target.parent.resolve()  # through any link
    if parent != root and root not in parent.parents:
        raise ValueError(f"{relative!r} would be written outside {folder}: not written")
    return target


def sync_tree(tree: Tree, folder: Path) -> None:
    """Make ``folder`` hold exactly ``tree``: changed files are replaced one by one (each
    atomically) first, then what ``tree`` lacks is removed (empty folders too)."""
    current = read_tree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for relative, content in tree.items():
        if current.get(relative) != content:
            write_file(_inside(folder, relative), content)
    for relative in sorted(current.keys() - tree.keys(), reverse=True):
        path = _inside(folder, relative)
        if path.is_symlink() or path.is_file():
            path.unlink()
    for directory, _subdirs, _files in sorted(os.walk(folder), reverse=True):
        if Path(directory) != folder and not os.listdir(directory):
            os.rmdir(directory)
