"""Making a write survive a power loss: file contents on disk before the rename that publishes
them, and the rename itself on disk after it.

A rename is atomic for readers, but after a power loss a renamed file can be empty or short if
its contents were still in the page cache (the delayed-allocation case of ext4 and XFS): the
directory entry reached the disk, the data did not. So every file is fsynced before its folder
or itself is renamed into place, and the folder that holds the new name is fsynced after.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder's entries (the names in it, not the files they point to)."""
    descriptor = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(path: Path) -> None:
    """Every file below `path`, then every folder from the deepest up: all of it is on disk."""
    if path.is_dir():
        for child in sorted(path.iterdir()):
            fsync_tree(child)
    fsync_path(path)
