import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract.lake import partition_store as lake
from extract.lake.partition_store import read_manifest, recover_interrupted, write_partition, write_table_atomically
from extract.lake.tables import checkpoint_dir


def tables(value: float) -> dict[str, pa.Table]:
    return {
        "token_stats": pa.table({"seed": [1, 2], "surprisal": [value, value]}),
        "pair_kl": pa.table({"seed_a": [1, 2], "seed_b": [2, 1], "kl": [value, value]}),
    }


def without_files(manifest: dict) -> dict:
    """The manifest as the caller gave it: without the files' sizes and checksums the write adds."""
    return {key: value for key, value in manifest.items() if key != "files"}


def snapshot(partition):
    """Every file of a partition with its bytes, to compare before and after."""
    return {path.name: path.read_bytes() for path in sorted(partition.iterdir())}


@pytest.fixture
def written(tmp_path):
    target = checkpoint_dir(tmp_path, "mini", "s", 4)
    write_partition(tmp_path, target, tables(1.0), {"rows": 2, "version": 1})
    return tmp_path, target


def test_partition_is_written_whole(written):
    _, target = written
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "pair_kl.parquet", "token_stats.parquet"]
    assert pq.read_table(target / "pair_kl.parquet").column("kl").to_pylist() == [1.0, 1.0]
    assert without_files(read_manifest(target)) == {"rows": 2, "version": 1}
    assert target.parts[-3:] == ("suite=mini", "size=s", "step=4")


def test_rerun_replaces_the_partition_whole(written):
    root, target = written
    write_partition(root, target, {"pair_kl": tables(2.0)["pair_kl"]}, {"version": 2})
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "pair_kl.parquet"]
    assert pq.read_table(target / "pair_kl.parquet").column("kl").to_pylist() == [2.0, 2.0]
    assert without_files(read_manifest(target)) == {"version": 2}


@pytest.mark.fault
def test_crash_while_writing_leaves_the_old_partition(written, monkeypatch):
    root, target = written
    before = snapshot(target)
    calls = []

    def failing_write(table, path, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        pq.write_table(table, path, **kwargs)

    monkeypatch.setattr(lake.pq, "write_table", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_partition(root, target, tables(3.0), {"version": 3})
    assert snapshot(target) == before
    assert not any((root / lake.STAGING).iterdir())


@pytest.mark.fault
def test_crash_between_the_renames_is_recovered(written, monkeypatch):
    root, target = written
    before = snapshot(target)
    real_replace = os.replace
    calls = []

    def replace_then_die(source, destination):
        calls.append(destination)
        if len(calls) == 2:  # old copy already in the trash, new one not yet in place
            raise KeyboardInterrupt
        real_replace(source, destination)

    monkeypatch.setattr(lake.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_partition(root, target, tables(4.0), {"version": 4})
    monkeypatch.setattr(lake.os, "replace", real_replace)

    assert not target.exists()
    assert recover_interrupted(root) == [target]
    assert snapshot(target) == before
    write_partition(root, target, tables(5.0), {"version": 5})
    assert without_files(read_manifest(target)) == {"version": 5}


def test_single_table_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "eval_tokens" / "suite=mini" / "eval_tokens.parquet"
    write_table_atomically(pa.table({"x": [1]}), path)

    def failing_write(table, destination, **kwargs):
        destination.write_bytes(b"half a file")
        raise OSError("killed")

    monkeypatch.setattr(lake.pq, "write_table", failing_write)
    with pytest.raises(OSError):
        write_table_atomically(pa.table({"x": [2]}), path)
    assert pq.read_table(path).column("x").to_pylist() == [1]
    assert [p.name for p in path.parent.iterdir()] == ["eval_tokens.parquet"]
