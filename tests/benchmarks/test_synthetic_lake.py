"""The synthetic lake of benchmarks/synthetic_lake.py: the contract's layout and schemas, values
that hang together (probabilities sum to 1, KL >= 0, curves shaped like training), and a writer
that is deterministic, restartable and checks the disk first."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks.synthetic_lake import (
    Grid,
    InsufficientDiskSpace,
    build_model,
    check_free_space,
    checkpoint_tables,
    estimate_lake_bytes,
    lake_bytes,
    paper_grid,
    read_partition,
    remove_partition,
    round_mantissa,
    write_synthetic_lake,
)
from extract.config import IclConfig
from extract.inputs.eval_tokens import EVAL_TOKENS_SCHEMA, eval_set_hash
from extract.inputs.icl_sequences import ICL_SEQUENCES_SCHEMA
from extract.inputs.token_tags import TOKEN_POS_SCHEMA
from extract.lake.tables import checkpoint_dir
from extract.measures.icl_scores import ICL_SCORES_SCHEMA
from extract.measures.token_distributions import PAIR_KL_SCHEMA, TOKEN_STATS_SCHEMA
from extract.registry import suite_table_path

# fmt: off
PENN_TAGS = {
    "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNS", "NNP", "NNPS", "PDT", "POS",
    "PRP", "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT",
    "WP", "WP$", "WRB", "#", "$", "''", "(", ")", ",", ".", ":", "``",
}
# extract.pipeline.extract_checkpoint's manifest keys
MANIFEST_KEYS = {
    "suite", "size", "step", "n_params", "seeds", "checkpoints", "eval_set", "eval_set_hash", "top_k", "device",
    "code_version", "created_at", "rows", "timings_s", "files",
}
# fmt: on

TINY = Grid(
    suite="tiny",
    sizes=("14m", "410m"),
    seeds=(1, 2, 3),
    steps=(0, 64, 4000, 143000),
    n_tokens=600,
    top_k=8,
    vocab=4096,
    window=64,
    icl=IclConfig(short_context=4, long_context=16, target_position=20, max_sequences=6),
)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "lake"
    report = write_synthetic_lake(root, TINY)
    assert sorted(report.written) == sorted(TINY.partitions) and not report.skipped
    return root


def test_every_table_has_the_contracts_schema(lake):
    assert pq.read_schema(lake / "eval_documents" / "eval_documents.parquet").names == [
        "eval_set",
        "doc_id",
        "category",
        "text",
    ]
    for table, schema in (
        ("eval_tokens", EVAL_TOKENS_SCHEMA),
        ("token_pos", TOKEN_POS_SCHEMA),
        ("icl_sequences", ICL_SEQUENCES_SCHEMA),
    ):
        assert pq.read_schema(suite_table_path(lake, table, TINY.suite)).equals(schema, check_metadata=False), table
    unigram = pq.read_schema(suite_table_path(lake, "unigram", TINY.suite))
    assert [(f.name, str(f.type)) for f in unigram] == [("token_id", "int32"), ("count", "int64")]
    for size, step in TINY.partitions:
        directory = checkpoint_dir(lake, TINY.suite, size, step)
        assert sorted(p.name for p in directory.iterdir()) == [
            "icl_scores.parquet",
            "manifest.json",
            "pair_kl.parquet",
            "token_stats.parquet",
        ]
        for name, schema in (
            ("token_stats", TOKEN_STATS_SCHEMA),
            ("pair_kl", PAIR_KL_SCHEMA),
            ("icl_scores", ICL_SCORES_SCHEMA),
        ):
            assert pq.read_schema(directory / f"{name}.parquet").equals(schema, check_metadata=False), name
    assert not (lake / ".staging").exists() or not any((lake / ".staging").iterdir())


def test_manifests_describe_their_partitions(lake):
    tokens = pq.read_table(suite_table_path(lake, "eval_tokens", TINY.suite))
    for size, step in TINY.partitions:
        manifest = json.loads((checkpoint_dir(lake, TINY.suite, size, step) / "manifest.json").read_text())
        assert set(manifest) == MANIFEST_KEYS
        assert (manifest["suite"], manifest["size"], manifest["step"]) == (TINY.suite, size, step)
        assert manifest["seeds"] == list(TINY.seeds) and manifest["top_k"] == TINY.top_k
        assert [c["seed"] for c in manifest["checkpoints"]] == list(TINY.seeds)
        assert all(c["weights"].startswith("sha256:") for c in manifest["checkpoints"])
        assert manifest["eval_set_hash"] == eval_set_hash(tokens)
        assert manifest["code_version"] == TINY.code_version
        tables = read_partition(lake, TINY.suite, size, step)
        assert manifest["rows"] == {name: table.num_rows for name, table in tables.items()}
        assert set(manifest["files"]) == {f"{name}.parquet" for name in tables}  # each with its checksum
    assert manifest["rows"] == {
        "token_stats": 3 * TINY.n_tokens,
        "pair_kl": 6 * TINY.n_tokens,
        "icl_scores": 3 * TINY.icl.max_sequences,
    }


def test_evaluation_set_hangs_together(lake):
    tokens = pq.read_table(suite_table_path(lake, "eval_tokens", TINY.suite)).to_pylist()
    documents = pq.read_table(lake / "eval_documents" / "eval_documents.parquet").to_pylist()
    documents = {d["doc_id"]: d["text"] for d in documents}
    assert [t["position"] for t in tokens] == list(range(TINY.n_tokens))
    for token in tokens:
        assert documents[token["doc_id"]][token["char_start"] : token["char_end"]] == token["token_text"]
        assert 0 <= token["context_len"] < TINY.window and 0 < token["token_id"] < TINY.vocab
    pos = pq.read_table(suite_table_path(lake, "token_pos", TINY.suite)).to_pylist()
    assert {row["pos"] for row in pos} - {None} <= PENN_TAGS
    for token, row in zip(tokens, pos):
        if token["context_len"] == 0:
            assert row["prev_pos"] is None
    for previous, row in zip(pos, pos[1:]):
        assert row["prev_pos"] in (None, previous["pos"])
    sequences = pq.read_table(suite_table_path(lake, "icl_sequences", TINY.suite)).to_pylist()
    assert len(sequences) == TINY.icl.max_sequences
    assert all(len(s["token_ids"]) == TINY.icl.target_position + 1 for s in sequences)


def test_token_stats_values_are_consistent(lake):
    log_v = math.log(TINY.vocab)
    for size, step in TINY.partitions:
        stats = read_partition(lake, TINY.suite, size, step)["token_stats"]
        columns = {
            name: stats.column(name).to_numpy()
            for name in ("surprisal", "entropy", "kl_uniform", "kl_unigram", "tail_mass")
        }
        assert (columns["surprisal"] >= 0).all() and (columns["kl_unigram"] >= 0).all()
        assert (columns["entropy"] > 0).all() and (columns["entropy"] < log_v).all()
        np.testing.assert_allclose(columns["kl_uniform"], log_v - columns["entropy"], atol=1e-5)
        ids = np.stack(stats.column("topk_ids").to_numpy(zero_copy_only=False))
        logprobs = np.stack(stats.column("topk_logprobs").to_numpy(zero_copy_only=False)).astype(np.float64)
        assert ids.shape == logprobs.shape == (len(TINY.seeds) * TINY.n_tokens, TINY.top_k)
        assert ((ids >= 0) & (ids < TINY.vocab)).all()
        assert all(len(set(row)) == TINY.top_k for row in ids), "top-k ids repeat within a row"
        assert (np.diff(logprobs, axis=1) <= 0).all(), "top-k log-probs not sorted descending"
        np.testing.assert_allclose(np.exp(logprobs).sum(axis=1) + columns["tail_mass"], 1.0, atol=1e-5)
        assert ((columns["tail_mass"] >= 0) & (columns["tail_mass"] <= 1)).all()
        # a random init ranks random ids first; trained models rank by a Zipf law: the most
        # frequent tenth of the vocabulary holds most of the top-k ids
        frequent = (ids < TINY.vocab // 10).mean()
        assert frequent < 0.3 if step == 0 else frequent > 0.5


def test_pair_kl_is_complete_and_nonnegative(lake):
    for size, step in TINY.partitions:
        pair_kl = read_partition(lake, TINY.suite, size, step)["pair_kl"].to_pydict()
        assert min(pair_kl["kl"]) >= 0
        keys = set(zip(pair_kl["seed_a"], pair_kl["seed_b"], pair_kl["position"]))
        expected = {(a, b, p) for a in TINY.seeds for b in TINY.seeds if a != b for p in range(TINY.n_tokens)}
        assert keys == expected and len(pair_kl["kl"]) == len(expected)


def _means(lake, size, step):
    tables = read_partition(lake, TINY.suite, size, step)
    surprisal = tables["token_stats"].column("surprisal").to_numpy().mean()
    kl = tables["pair_kl"].column("kl").to_numpy().mean()
    icl = tables["icl_scores"].to_pandas()
    return surprisal, kl, (icl.surprisal_short - icl.surprisal_long).mean()


def test_curves_move_like_training(lake):
    for size in TINY.sizes:
        ce = {step: _means(lake, size, step)[0] for step in TINY.steps}
        kl = {step: _means(lake, size, step)[1] for step in TINY.steps}
        assert abs(ce[0] - math.log(TINY.vocab)) < 0.5  # a random init is near uniform
        assert ce[0] > ce[64] > ce[4000] > ce[143000]
        assert 0.1 < kl[0] < 0.4  # random inits disagree by about 0.2 nats
        assert kl[64] < kl[0] < kl[4000]  # converge while learning unigrams, then diverge
        assert kl[143000] < kl[4000]  # and slowly re-converge
    final = {size: _means(lake, size, 143000) for size in TINY.sizes}
    assert final["410m"][0] < final["14m"][0]  # larger models: lower cross-entropy,
    assert final["410m"][1] < final["14m"][1]  # more convergence,
    assert final["410m"][2] > final["14m"][2] > _means(lake, "14m", 0)[2]  # a larger ICL score


def test_partitions_are_deterministic():
    model = build_model(TINY)
    first = checkpoint_tables(model, "14m", 4000)
    again = checkpoint_tables(build_model(TINY), "14m", 4000)
    assert all(first[name].equals(again[name]) for name in first)
    other = checkpoint_tables(model, "14m", 64)
    assert not first["pair_kl"].equals(other["pair_kl"])


def test_rerun_skips_what_is_written_and_remove_deletes(lake):
    before = lake_bytes(lake)
    report = write_synthetic_lake(lake, TINY)
    assert report.written == [] and sorted(report.skipped) == sorted(TINY.partitions)
    assert lake_bytes(lake) == before

    size, step = TINY.partitions[0]
    manifest = (checkpoint_dir(lake, TINY.suite, size, step) / "manifest.json").read_text()
    assert remove_partition(lake, TINY.suite, size, step)
    assert not checkpoint_dir(lake, TINY.suite, size, step).exists()
    report = write_synthetic_lake(lake, TINY)
    assert report.written == [(size, step)]
    rewritten = json.loads((checkpoint_dir(lake, TINY.suite, size, step) / "manifest.json").read_text())
    assert rewritten["created_at"] != json.loads(manifest)["created_at"]


def test_lake_that_does_not_fit_is_refused(tmp_path):
    with pytest.raises(InsufficientDiskSpace, match="GB free"):
        check_free_space(tmp_path / "not" / "yet", 1 << 62)
    with pytest.raises(InsufficientDiskSpace):
        write_synthetic_lake(tmp_path / "lake", Grid(n_tokens=4_662 * 10**6 // 5, sizes=("14m",), steps=(0,)))
    assert not (tmp_path / "lake").exists()


def test_estimates_scale_with_the_grid():
    paper, hundred = estimate_lake_bytes(paper_grid()), estimate_lake_bytes(paper_grid(100))
    assert 0.2e9 < paper < 1e9 and 90 < hundred / paper < 101
    assert paper_grid(100).rows() == {"token_stats": 233_100_000, "pair_kl": 932_400_000, "icl_scores": 32_000}


def test_mantissa_rounding_keeps_order():
    values = -np.sort(np.random.default_rng(0).exponential(3.0, 10_000)).astype(np.float32)[::-1]
    rounded = round_mantissa(values, 10)
    assert (np.diff(rounded) <= 0).all() or (np.diff(rounded) >= 0).all()
    np.testing.assert_allclose(rounded, values, rtol=2**-10)
    assert round_mantissa(values, 23) is values
