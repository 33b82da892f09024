"""Writing beside a target and renaming over it, so no reader ever sees half of a file or folder.

Every file and folder the pipeline publishes goes through here: lake tables and records, trained
checkpoints, the corpus and tagger caches, the published DuckDB copy and the report page.
(Partitions, which replace a whole folder and keep its old copy until the new one is in place,
add a trash step on top: extract/lake/partition_store.py.)
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from extract.lake.durability import fsync_path, fsync_tree


@contextmanager
def replaced_atomically(target: Path) -> Iterator[Path]:
    """A fresh staging path beside `target` (same folder, so the same filesystem) to write a file
    or a folder at; fsynced and renamed over `target` when the block ends, removed if it raises."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
    try:
        yield staging
        fsync_tree(staging)  # contents on disk before the rename publishes them
        if staging.is_dir() and target.is_dir():
            shutil.rmtree(target)  # a folder cannot be renamed over a non-empty one
        os.replace(staging, target)
        fsync_path(target.parent)  # and the rename itself
    finally:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)


def install_folder(staged: Path, target: Path, is_complete: Callable[[Path], bool]) -> None:
    """Renames `staged` to `target`, which must be on the same filesystem.

    A partial `target` (never one of ours, since ours appear whole: a copy left by hand or by an
    older tool) is removed first. If a concurrent writer put a complete copy there first, that
    one is kept: both hold the same content.
    """
    if target.exists() and not is_complete(target):
        shutil.rmtree(target)
    try:
        os.replace(staged, target)
    except OSError:
        if not is_complete(target):
            raise
