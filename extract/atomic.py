"""Putting a finished folder in place in one rename, so no reader ever sees half of it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


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
