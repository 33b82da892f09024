"""The Parquet lake: hive-partitioned folders written so that readers see all or nothing.

A checkpoint partition is one folder, `checkpoints/suite=<s>/size=<z>/step=<n>/`, holding
one Parquet file per table and `manifest.json`. It is written whole in a staging folder, fsynced,
and renamed into place, so a reader never sees half of one, and a partition is complete when its
manifest is there; the manifest records each file's size and checksum (extract/lake/integrity.py).
A rerun replaces a partition whole; the old copy waits in `.trash/` until the new one is in place,
so a crash between the two renames loses nothing (`recover_interrupted` puts it back).

A checkpoint whose models give NaN or infinite outputs is not written: its partition gets a
quarantine record, `quarantine/suite=<s>/size=<z>/step=<n>.json`, naming each seed and what is
not finite, and any copy stored before stays as it was. A later successful write of the
partition removes the record.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from extract.lake.atomic_writes import replaced_atomically
from extract.lake.durability import fsync_path, fsync_tree
from extract.lake.integrity import file_records
from extract.lake.tables import CHECKPOINTS

MANIFEST = "manifest.json"
QUARANTINE = "quarantine"
DAMAGED = "damaged"
STAGING = ".staging"
TRASH = ".trash"
STALE_STAGING_S = 24 * 3600


class LakeWriteError(OSError):
    """A write to the lake failed (a full disk, a lost mount); what was stored before is intact."""


def damaged_dir(lake: Path, suite: str, size: str, step: int) -> Path:
    """Where damaged copies of the partition are set aside (extract/lake/repair.py)."""
    return lake / DAMAGED / f"suite={suite}" / f"size={size}" / f"step={step}"


def quarantine_path(lake: Path, suite: str, size: str, step: int) -> Path:
    return lake / QUARANTINE / f"suite={suite}" / f"size={size}" / f"step={step}.json"


def read_quarantine(lake: Path, suite: str, size: str, step: int) -> dict | None:
    """The partition's quarantine record, or None when it has none."""
    path = quarantine_path(lake, suite, size, step)
    return json.loads(path.read_text()) if path.exists() else None


# Parquet writer settings, each measured by benchmarks/storage.py (docs/storage.md): on the mini
# suite they take token_stats from 187.5 to 124.0 B per (token, seed) record (k = 32; 201 to
# 144 B at a 50,304-token vocabulary) and pair_kl from 5.8 to 3.0 B per (token, pair) record.
# Lossless: the values read back are bit-identical, with pyarrow and with DuckDB.
# - float columns (list elements included) BYTE_STREAM_SPLIT: the sign/exponent bytes of a
#   column of log-probabilities or KLs repeat, and zstd finds that once they are split out
#   (dictionary encoding, the default, helps no float column: nearly every value is distinct);
# - `position` DELTA_BINARY_PACKED: it counts up in steps of one within each seed or pair;
# - other columns (seeds, top-k ids, strings) keep dictionary encoding;
# - zstd level 6: 1.6 % smaller than level 3 on the mini suite (no better at 50k); levels 9 and 12
#   save under 0.4 % more, at up to twice the write time.
ZSTD_LEVEL = 6
DELTA_COLUMNS = frozenset({"position"})


def _parquet_options(schema: pa.Schema) -> dict:
    """Per-column encodings by the column's (leaf) type; Arrow names a list's values `<name>.list.element`."""
    encodings, dictionary = {}, []
    for field in schema:
        nested = pa.types.is_list(field.type) or pa.types.is_large_list(field.type)
        leaf_type = field.type.value_type if nested else field.type
        leaf = f"{field.name}.list.element" if nested else field.name
        if pa.types.is_floating(leaf_type):
            encodings[leaf] = "BYTE_STREAM_SPLIT"
        elif field.name in DELTA_COLUMNS and pa.types.is_integer(leaf_type) and not nested:
            encodings[leaf] = "DELTA_BINARY_PACKED"
        else:
            dictionary.append(leaf)
    return {
        "compression": "zstd",
        "compression_level": ZSTD_LEVEL,
        "use_dictionary": dictionary,
        "column_encoding": encodings,
    }


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, **_parquet_options(table.schema))


def write_table_atomically(table: pa.Table, path: Path) -> None:
    """One Parquet file, written beside its target and renamed over it."""
    with replaced_atomically(path) as staging:
        _write_parquet(table, staging)


def write_json_atomically(document: dict, path: Path) -> None:
    with replaced_atomically(path) as staging:
        staging.write_text(json.dumps(document, indent=2, sort_keys=True))


def write_quarantine(lake: Path, record: dict) -> Path:
    """Records why (suite, size, step) is not written; its stored copy, if any, is left alone."""
    path = quarantine_path(lake, record["suite"], record["size"], record["step"])
    try:
        write_json_atomically(record, path)
    except OSError as error:
        raise LakeWriteError(error.errno, f"writing the quarantine record {path} failed: {error}") from error
    return path


def write_partition(lake: Path, target: Path, tables: dict[str, pa.Table], manifest: dict) -> dict:
    """Writes `tables` and `manifest` as the folder `target`, replacing any older copy whole.

    Returns the manifest as written: with the write's seconds in its `timings_s`, if it has one.
    """
    recover_interrupted(lake, only=target)
    staging = lake / STAGING / uuid.uuid4().hex
    try:
        try:
            staging.mkdir(parents=True)
            started = time.perf_counter()
            for name, table in tables.items():
                _write_parquet(table, staging / f"{name}.parquet")
            if "timings_s" in manifest:  # a manifest that carries timings records the write's too
                manifest = {**manifest, "timings_s": {**manifest["timings_s"], "write": time.perf_counter() - started}}
            # The manifest, written last, records every file's size and checksum (the scrub's reference).
            manifest = {**manifest, "files": file_records(staging)}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            fsync_tree(staging)  # contents on disk before the rename publishes them
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            # Nothing has touched `target` yet: its old copy, if any, is as it was.
            raise LakeWriteError(
                error.errno, f"writing the partition {target} failed, its previous copy is untouched: {error}"
            ) from error
        _swap_into_place(lake, staging, target)
        fsync_path(target.parent)  # and the rename itself
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if "suite" in manifest:  # the partition is good now: an older quarantine or damage no longer holds
        quarantine_path(lake, manifest["suite"], manifest["size"], manifest["step"]).unlink(missing_ok=True)
        shutil.rmtree(damaged_dir(lake, manifest["suite"], manifest["size"], manifest["step"]), ignore_errors=True)
    return manifest


def _swap_into_place(lake: Path, staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    # The old copy goes to the trash with a note of where it came from, then the new one takes
    # its place. Only after both renames is the old copy deleted.
    trash = lake / TRASH / uuid.uuid4().hex
    trash.mkdir(parents=True)
    (trash / "target").write_text(str(target))
    os.replace(target, trash / "data")
    try:
        os.replace(staging, target)
    except OSError:
        os.replace(trash / "data", target)  # the new copy cannot go in: the old one goes back
        shutil.rmtree(trash, ignore_errors=True)
        raise
    shutil.rmtree(trash)


def recover_interrupted(lake: Path, only: Path | None = None) -> list[Path]:
    """Puts back partitions whose replacement was cut short (all, or just `only`).

    Returns the partitions restored. Staging folders left by killed writers are invisible to
    readers; those older than a day are removed (younger ones may belong to a live writer).
    """
    restored = []
    trash_root = lake / TRASH
    for trash in sorted(trash_root.iterdir()) if trash_root.is_dir() else []:
        note, data = trash / "target", trash / "data"
        target = Path(note.read_text()) if note.exists() else None
        if only is not None and target != only:
            continue
        if target is not None and data.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(data, target)
            restored.append(target)
        shutil.rmtree(trash, ignore_errors=True)
    staging_root = lake / STAGING
    for staging in staging_root.iterdir() if staging_root.is_dir() else []:
        if time.time() - staging.stat().st_mtime > STALE_STAGING_S:
            shutil.rmtree(staging, ignore_errors=True)
    return restored


def read_manifest(partition: Path) -> dict | None:
    """The partition's manifest, or None when the partition is absent or incomplete."""
    path = partition / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def stored_sources(lake: Path, suite: str) -> set[str]:
    """The checkpoints (their sources, as manifests name them) of every partition of `suite`
    that the lake holds: what need not be read again unless a partition is extracted again."""
    sources = set()
    for path in (lake / CHECKPOINTS / f"suite={suite}").glob(f"size=*/step=*/{MANIFEST}"):
        sources |= {checkpoint["source"] for checkpoint in json.loads(path.read_text()).get("checkpoints", [])}
    return sources
