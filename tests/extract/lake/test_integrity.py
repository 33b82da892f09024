"""Damage to a committed partition is found and named, by its checksums and by the cheap check of
sizes and footers; the scrub itself changes nothing."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract.lake.integrity import CHECKSUM, file_checksum, partition_problems
from extract.lake.partition_store import MANIFEST, write_partition
from extract.lake.repair import damaged_partitions, guard
from extract.lake.scrub import main, scrub
from extract.lake.tables import checkpoint_dir


def tables(value: float, n: int = 2000) -> dict[str, pa.Table]:
    # Enough rows that a data page lies well away from the footer.
    return {
        "token_stats": pa.table({"seed": [1, 2] * (n // 2), "surprisal": [value + i for i in range(n)]}),
        "pair_kl": pa.table({"seed_a": [1, 2] * (n // 2), "kl": [value * i for i in range(n)]}),
    }


@pytest.fixture
def lake(tmp_path):
    """Two committed partitions, each with its manifest's sizes and checksums."""
    for step in (4, 8):
        target = checkpoint_dir(tmp_path, "mini", "s", step)
        rows = {name: table.num_rows for name, table in tables(1.0).items()}
        write_partition(
            tmp_path, target, tables(float(step)), {"suite": "mini", "size": "s", "step": step, "rows": rows}
        )
    return tmp_path


def everything(lake):
    return {path: path.read_bytes() for path in sorted(lake.rglob("*")) if path.is_file()}


def test_the_manifest_records_every_file_with_its_size_and_checksum(lake):
    partition = checkpoint_dir(lake, "mini", "s", 4)
    files = json.loads((partition / MANIFEST).read_text())["files"]
    assert set(files) == {"token_stats.parquet", "pair_kl.parquet"}
    for name, record in files.items():
        assert record == {"bytes": (partition / name).stat().st_size, CHECKSUM: file_checksum(partition / name)}
    report = scrub(lake)
    assert report.partitions == 2 and report.files == 4 and not report.damaged


def _flip_a_byte_in_a_data_page(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the column chunks: the footer at the end still parses
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path):
    # What a power loss leaves of a file renamed before its contents reached the disk.
    path.write_bytes(b"")


def _from_another_write(path):
    pq.write_table(tables(99.0, n=1000)["pair_kl"], path)


@pytest.mark.fault
@pytest.mark.parametrize(
    "damage, found_quick, message",
    [
        (_truncate, True, "pair_kl.parquet has .* bytes, the manifest says"),
        (_empty, True, "pair_kl.parquet has 0 bytes"),
        (lambda path: path.unlink(), True, "pair_kl.parquet is missing"),
        (_from_another_write, True, "pair_kl.parquet has .* bytes"),
        (_flip_a_byte_in_a_data_page, False, "pair_kl.parquet does not match its checksum"),
    ],
    ids=["truncated", "empty after a power loss", "missing", "from another write", "a flipped byte"],
)
def test_a_damaged_file_is_named_and_nothing_is_changed(lake, capsys, damage, found_quick, message):
    damaged = checkpoint_dir(lake, "mini", "s", 8)
    damage(damaged / "pair_kl.parquet")
    if damage is _flip_a_byte_in_a_data_page:
        assert pq.ParquetFile(damaged / "pair_kl.parquet").metadata.num_rows == 2000  # the footer hides it
    before = everything(lake)

    report = scrub(lake)
    assert list(report.damaged) == ["checkpoints/suite=mini/size=s/step=8"]
    assert any(
        pytest.importorskip("re").search(message, problem) for problem in report.damaged[next(iter(report.damaged))]
    )
    quick = scrub(lake, deep=False)
    assert bool(quick.damaged) == found_quick

    assert main(["--lake", str(lake)]) == 1
    assert "DAMAGED checkpoints/suite=mini/size=s/step=8" in capsys.readouterr().out
    assert everything(lake) == before  # the scrub reads, and changes nothing


@pytest.mark.fault
def test_a_manifest_that_no_longer_matches_is_named(lake):
    partition = checkpoint_dir(lake, "mini", "s", 4)
    manifest = json.loads((partition / MANIFEST).read_text())
    manifest["rows"]["token_stats"] += 1
    del manifest["files"]  # as a manifest written before checksums: the footers are still checked
    (partition / MANIFEST).write_text(json.dumps(manifest))
    assert partition_problems(partition, manifest) == ["token_stats.parquet has 2000 rows, the manifest says 2001"]
    (partition / MANIFEST).write_text("{not json")
    assert scrub(lake).damaged == {
        "checkpoints/suite=mini/size=s/step=4": [
            f"{MANIFEST} is not readable: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
        ]
    }


def test_a_commit_syncs_contents_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """The order that survives a power loss: every file of the staged partition fsynced, then the
    rename into place, then the folder that holds the new name fsynced."""
    events, opened = [], {}
    real_open, real_fsync, real_replace = os.open, os.fsync, os.replace

    def recording_open(path, flags, *args, **kwargs):
        descriptor = real_open(path, flags, *args, **kwargs)
        opened[descriptor] = str(path)
        return descriptor

    def recording_fsync(descriptor):
        events.append(("fsync", opened[descriptor]))
        return real_fsync(descriptor)

    def recording_replace(source, target):
        events.append(("rename", str(source), str(target)))
        return real_replace(source, target)

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    target = checkpoint_dir(tmp_path, "mini", "s", 4)
    write_partition(tmp_path, target, tables(1.0), {"step": 4})

    (rename,) = [index for index, event in enumerate(events) if event[0] == "rename"]
    staged = events[rename][1]
    synced_before = {event[1] for event in events[:rename] if event[0] == "fsync"}
    for name in ("token_stats.parquet", "pair_kl.parquet", MANIFEST):
        assert f"{staged}/{name}" in synced_before, name
    assert staged in synced_before  # the staged folder's own entries
    assert ("fsync", str(target.parent)) in events[rename + 1 :]


@pytest.mark.fault
def test_a_damaged_partition_is_set_aside_until_it_is_written_again(lake):
    """The guard moves a damaged partition out of what dbt reads, says why, and leaves the others;
    a new write of the partition puts it back and clears what was set aside."""
    damaged = checkpoint_dir(lake, "mini", "s", 8)
    healthy = checkpoint_dir(lake, "mini", "s", 4)
    kept = {path.name: path.read_bytes() for path in healthy.iterdir()}
    _truncate(damaged / "pair_kl.parquet")

    (problems,) = guard(lake).values()
    assert problems[0].startswith("pair_kl.parquet has") and not damaged.exists()
    assert {path.name: path.read_bytes() for path in healthy.iterdir()} == kept
    (reason,) = damaged_partitions(lake).values()
    assert (reason["suite"], reason["size"], reason["step"], reason["problems"]) == ("mini", "s", 8, problems)
    (aside,) = (lake / "damaged").glob("suite=mini/size=s/step=8/*/data/pair_kl.parquet")  # kept, to look at
    assert guard(lake) == {}, "nothing else is damaged"

    # A flipped byte passes the cheap guard and is caught by the deep one (the daily scrub's).
    _flip_a_byte_in_a_data_page(healthy / "token_stats.parquet")
    assert guard(lake) == {}
    assert list(guard(lake, deep=True)) == [("mini", "s", 4)]

    write_partition(lake, damaged, tables(8.0), {"suite": "mini", "size": "s", "step": 8, "rows": {}})
    assert list(damaged_partitions(lake)) == [("mini", "s", 4)]
    assert not (lake / "damaged" / "suite=mini" / "size=s" / "step=8").exists()
