"""Bytes per record (benchmarks/storage.py) and the lake's Parquet writer (extract/lake.py)."""

import json

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.topk_kl import vocab_from_token_stats
from benchmarks import storage
from extract.lake.partition_store import write_partition, write_table_atomically
from extract.lake.tables import checkpoint_dir
from extract.measures.token_distributions import TOKEN_STATS_SCHEMA
from extract.pipeline import extract_checkpoint
from extract.registry import suite_table_path


@pytest.fixture(scope="module")
def extracted_tables(micro_settings):
    extract_checkpoint(micro_settings, "micro", "b", 8)
    partition = checkpoint_dir(micro_settings.paths.lake, "micro", "b", 8)
    return {name: pq.read_table(partition / f"{name}.parquet") for name in ("token_stats", "pair_kl")}


@pytest.fixture(scope="module")
def tiny_lake(tmp_path_factory, extracted_tables, micro_settings):
    """Two partitions written by extract.lake.partition_store.write_partition, plus one without a manifest."""
    lake = tmp_path_factory.mktemp("storage") / "lake"
    for step in (8, 9):
        target = checkpoint_dir(lake, "micro", "b", step)
        write_partition(lake, target, extracted_tables, {"top_k": micro_settings.eval.top_k, "step": step})
    incomplete = checkpoint_dir(lake, "micro", "b", 10)
    write_partition(lake, incomplete, extracted_tables, {"top_k": micro_settings.eval.top_k})
    (incomplete / "manifest.json").unlink()
    return lake


def test_bytes_per_record_match_the_files(tiny_lake, extracted_tables, micro_settings):
    assert [p.name for p in storage.complete_partitions(tiny_lake)] == ["step=8", "step=9"]
    measured = storage.lake_storage(tiny_lake)
    for name, table in extracted_tables.items():
        files = [tiny_lake / "checkpoints/suite=micro/size=b" / f"step={s}" / f"{name}.parquet" for s in (8, 9)]
        size = sum(f.stat().st_size for f in files)
        m = measured[name]
        assert (m.files, m.rows, m.file_bytes) == (2, 2 * table.num_rows, size)
        assert m.bytes_per_row == pytest.approx(size / (2 * table.num_rows))
        # Every byte is counted: the columns plus what the file holds beside them.
        assert sum(m.per_row().values()) * m.rows == pytest.approx(size)
        assert set(m.column_bytes) == set(table.schema.names)
        chunk = pq.ParquetFile(files[0]).metadata.row_group(0)
        topk = [chunk.column(i) for i in range(chunk.num_columns) if chunk.column(i).path_in_schema.startswith("topk")]
        if name == "token_stats":
            assert m.column_bytes["topk_ids"] == 2 * topk[0].total_compressed_size
    assert storage.lake_top_k(tiny_lake) == [micro_settings.eval.top_k]
    lines = storage.format_storage(measured["token_stats"], "token, seed", [micro_settings.eval.top_k])
    assert "does not apply" in lines[1]  # the micro suite keeps k = 8, the target is for k = 32
    assert "met" in storage.target_verdict(299.0, [32]) and "MISSED" in storage.target_verdict(301.0, [32])


def test_compare_kl_on_a_tiny_lake(tiny_lake, extracted_tables):
    comparison = storage.compare_kl(tiny_lake)
    pair_kl = extracted_tables["pair_kl"]
    assert len(comparison.exact) == 2 * pair_kl.num_rows
    assert np.sort(comparison.exact[: pair_kl.num_rows]) == pytest.approx(np.sort(pair_kl.column("kl").to_numpy()))
    assert np.isfinite(comparison.estimate).all() and (comparison.estimate >= 0).all()
    assert comparison.vocab == [vocab_from_token_stats(extracted_tables["token_stats"])]
    expected_conv = -float(np.mean(pair_kl.column("kl").to_numpy().astype(np.float64)))
    assert [row[:3] for row in comparison.expected] == [("micro", "b", 8), ("micro", "b", 9)]
    assert comparison.expected[0][3] == pytest.approx(expected_conv, rel=1e-9)

    rows = storage.error_rows(comparison.exact, comparison.estimate, comparison.exact, storage.KL_EDGES)
    assert sum(r["count"] for r in rows[:-1]) == rows[-1]["count"] == len(comparison.exact)
    tail_rows = storage.error_rows(comparison.exact, comparison.estimate, comparison.tail, storage.TAIL_EDGES)
    assert sum(r["count"] for r in tail_rows[:-1]) == len(comparison.exact)  # a tail mass of 1 is counted
    assert tail_rows[-2]["range"] == "[0.9, 1]"


def test_error_rows_by_hand():
    exact = np.array([1e-4, 2e-4, 0.5, 2.0])
    estimate = np.array([2e-4, 2e-4, 0.25, 2.0])
    rows = storage.error_rows(exact, estimate, exact, (0.0, 1e-3, 1.0, np.inf))
    assert [r["count"] for r in rows] == [2, 1, 1, 4]
    assert rows[0]["median_abs_rel"] == pytest.approx(0.5)  # errors 100 % and 0 %
    assert rows[0]["bias"] == pytest.approx(0.5)
    assert rows[1]["median_rel"] == pytest.approx(-0.5)
    assert rows[2]["median_abs"] == 0.0


def test_benchmark_prints_its_report(tiny_lake, capsys):
    storage.main(["--lake", str(tiny_lake), "--no-realistic-vocab"])
    out = capsys.readouterr().out
    assert "2 complete partitions" in out
    assert "(token, seed) records" in out and "(token, pair) records" in out
    assert "By exact KL (nats), all pairs:" in out and "E[conv] per (suite, size, step)" in out


def _bits(table: pa.Table) -> dict:
    """Every column's values with floats as their bit patterns, so equality is bit-exact."""
    out = {}
    for field in table.schema:
        column = table.column(field.name).combine_chunks()
        if pa.types.is_list(field.type):
            column = column.flatten()
        values = column.to_numpy(zero_copy_only=False)
        out[field.name] = values.view(np.uint32) if values.dtype == np.float32 else values
    return out


def test_the_writer_is_lossless_and_duckdb_reads_it(tmp_path, extracted_tables, micro_settings):
    lake = micro_settings.paths.lake
    tables = {
        **extracted_tables,
        "eval_tokens": pq.read_table(suite_table_path(lake, "eval_tokens", "micro")),
        "icl_sequences": pq.read_table(suite_table_path(lake, "icl_sequences", "micro")),
        "special_floats": pa.table(
            {"x": pa.array([0.0, -0.0, 1e-45, np.inf, -np.inf, np.nan, None], pa.float32()), "d": [1.5] * 7}
        ),
    }
    for name, table in tables.items():
        path = tmp_path / f"{name}.parquet"
        write_table_atomically(table, path)
        back = pq.read_table(path)
        assert back.schema.remove_metadata() == table.schema.remove_metadata(), name
        for column, values in _bits(table).items():
            np.testing.assert_array_equal(_bits(back)[column], values, err_msg=f"{name}.{column}")
        from_duckdb = duckdb.sql(f"select * from read_parquet('{path}')").arrow()
        from_duckdb = from_duckdb.read_all() if hasattr(from_duckdb, "read_all") else from_duckdb
        for column, values in _bits(from_duckdb.cast(table.schema)).items():
            np.testing.assert_array_equal(values, _bits(table)[column], err_msg=f"duckdb {name}.{column}")

    encodings = {}
    metadata = pq.ParquetFile(tmp_path / "token_stats.parquet").metadata.row_group(0)
    for i in range(metadata.num_columns):
        encodings[metadata.column(i).path_in_schema] = metadata.column(i).encodings
    assert "BYTE_STREAM_SPLIT" in encodings["topk_logprobs.list.element"]
    assert "BYTE_STREAM_SPLIT" in encodings["surprisal"]
    assert "DELTA_BINARY_PACKED" in encodings["position"]
    assert "RLE_DICTIONARY" in encodings["topk_ids.list.element"]


def test_realistic_vocabulary_table():
    table = storage.realistic_vocab_token_stats("peaked", n_tokens=128, seeds=2)
    assert table.schema == TOKEN_STATS_SCHEMA
    assert table.num_rows == 256
    assert vocab_from_token_stats(table) == storage.REALISTIC_VOCAB
    ids = table.column("topk_ids").combine_chunks().flatten().to_numpy()
    assert ids.max() < storage.REALISTIC_VOCAB and len(ids) == 256 * 32
    measured, _ = storage.realistic_vocab_storage("random-init", n_tokens=128, seeds=2)
    assert measured.rows == 256 and measured.files == 1
    assert 50 < measured.bytes_per_row < 1000
    assert json.dumps(storage.describe_distributions(table))
