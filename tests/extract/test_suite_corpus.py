"""A second suite evaluated on a corpus of the user's own, beside the default held-out Brown: the
same checkpoints, its own evaluation text, windows and unigram reference, through the pipeline."""

from __future__ import annotations

import json
from pydoc_data.topics import topics

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract import pipeline
from extract.config import load_settings
from extract.inputs.eval_tokens import (
    EVAL_DOCUMENTS,
    EVAL_TOKENS,
    TOKEN_FREQUENCY,
    UNIGRAM,
    EvalSetError,
    table_hash,
)
from extract.lake.tables import checkpoint_dir
from extract.measures.token_distributions import PAIR_KL
from tests.helpers.micro import MICRO_CONFIG

SUITE = "micro-docs"


@pytest.fixture
def docs_settings(warehouse_copy, tmp_path):
    """The micro warehouse, plus the suite micro-docs: the micro checkpoints on the Python
    documentation's topics (text from an installed package), overlapping windows and unigram
    counts of the user's own."""
    brown = warehouse_copy()
    corpus = tmp_path / "python-docs.jsonl"
    corpus.write_text("".join(json.dumps({"body": topics[name]}) + "\n" for name in sorted(topics)))
    counts = tmp_path / "counts.parquet"
    pq.write_table(pa.table({"token_id": np.arange(300, dtype=np.int32), "count": np.arange(1, 301)}), counts)

    def settings(**eval_keys):
        keys = {"corpus": str(corpus), "text_column": "body", "sample_seed": 3, "n_tokens": 200, "window": 32}
        keys |= {"stride": 16, "unigram": str(counts)} | eval_keys
        config = tmp_path / "seedconv.toml"
        config.write_text(
            MICRO_CONFIG
            + f'\n[[suites]]\nname = "{SUITE}"\nkind = "local"\npath = "{brown.paths.suites / "micro"}"\n'
            + "[suites.eval]\n"
            + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
        )
        return load_settings(config, brown.paths.root)

    return settings


def test_a_suite_on_its_own_corpus_is_extracted_beside_the_brown_one(docs_settings):
    settings = docs_settings()
    lake = settings.paths.lake
    brown_tokens = pq.read_table(EVAL_TOKENS.path(lake, "micro"))
    summary = pipeline.build_eval_set(settings, SUITE)

    tokens = pq.read_table(EVAL_TOKENS.path(lake, SUITE))
    documents = pq.read_table(EVAL_DOCUMENTS.path(lake)).to_pylist()
    texts = {row["doc_id"]: row["text"] for row in documents if row["eval_set"] == summary["eval_set"]}
    assert summary["eval_set"].startswith("python-docs.jsonl-") and tokens.num_rows == 200
    assert set(texts.values()) <= set(topics.values())
    for row in tokens.to_pylist():
        assert row["token_text"] == texts[row["doc_id"]][row["char_start"] : row["char_end"]]
    # Overlapping windows: 32 tokens, a new one every 16; after a document's first window, every
    # scored token has at least 16 tokens of context.
    context = tokens.column("context_len").to_numpy()
    assert context.max() == 31 and (context[np.r_[False, np.diff(context) < 0]] == 16).all()
    # The Brown suite's rows are kept: its evaluation set and its documents.
    assert pq.read_table(EVAL_TOKENS.path(lake, "micro")).equals(brown_tokens)
    assert {row["eval_set"] for row in documents} == {"brown-heldout", summary["eval_set"]}
    assert pq.read_table(UNIGRAM.path(lake, SUITE)).column("count").to_pylist() == list(range(1, 301))
    # The frequency bins count the evaluation tokens by default (eval.frequency = "eval").
    ids, counts = np.unique(tokens.column("token_id").to_numpy(), return_counts=True)
    frequency = pq.read_table(TOKEN_FREQUENCY.path(lake, SUITE))
    assert frequency.column("token_id").to_pylist() == ids.tolist()
    assert frequency.column("count").to_pylist() == counts.tolist()

    (manifest,) = pipeline.extract_checkpoints(settings, SUITE, [("a", 8)])
    assert manifest["eval_corpus"].endswith("python-docs.jsonl") and manifest["eval_set"] == summary["eval_set"]
    assert manifest["unigram_hash"] == table_hash(pq.read_table(UNIGRAM.path(lake, SUITE)))
    assert (manifest["frequency"], manifest["frequency_hash"]) == ("eval", table_hash(frequency))
    pair_kl = pq.read_table(PAIR_KL.path(lake, SUITE, "a", 8))
    assert pair_kl.num_rows == 200 * 6 and np.isfinite(pair_kl.column("kl").to_numpy()).all()


def test_the_frequency_corpus_is_a_setting_of_its_own(docs_settings, tmp_path):
    counts = tmp_path / "validation_counts.parquet"
    pq.write_table(pa.table({"token_id": [5, 9], "count": [70, 2]}), counts)
    for frequency, expected in (("unigram", list(range(1, 301))), (str(counts), [70, 2])):
        settings = docs_settings(frequency=frequency)
        pipeline.build_eval_set(settings, SUITE)
        assert pq.read_table(TOKEN_FREQUENCY.path(settings.paths.lake, SUITE)).column("count").to_pylist() == expected


def test_a_seeded_sample_picks_other_documents_with_another_seed(docs_settings):
    first = pipeline.eval_corpus(docs_settings(sample_seed=3), SUITE)
    again = pipeline.eval_corpus(docs_settings(sample_seed=3), SUITE)
    other = pipeline.eval_corpus(docs_settings(sample_seed=4), SUITE)
    assert first == again and first[1] != other[1] and first[0] == other[0]


@pytest.mark.fault
def test_a_window_longer_than_the_models_context_is_named_and_nothing_is_written(docs_settings):
    settings = docs_settings(window=3000, stride=3000, n_tokens=2100)
    pipeline.build_eval_set(settings, SUITE)
    with pytest.raises(EvalSetError, match=r"windows are 2100 tokens long but .* reads at most 2048"):
        list(pipeline.extract_checkpoints(settings, SUITE, [("a", 8)]))
    assert not checkpoint_dir(settings.paths.lake, SUITE, "a", 8).exists()


@pytest.mark.fault
def test_unigram_counts_outside_the_vocabulary_are_named(docs_settings, tmp_path):
    counts = tmp_path / "bad_counts.parquet"
    pq.write_table(pa.table({"token_id": [1, 99_999], "count": [3, 4]}), counts)
    settings = docs_settings(unigram=str(counts))
    with pytest.raises(EvalSetError, match=r"distinct token ids in \[0, 384\)"):
        pipeline.build_eval_set(settings, SUITE)
    assert not UNIGRAM.path(settings.paths.lake, SUITE).exists()
