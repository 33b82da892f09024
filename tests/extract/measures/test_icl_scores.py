import tomllib

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from extract.config import REPO_ROOT, ConfigError, IclConfig, load_settings, parse_settings
from extract.inputs.brown_corpus import Document
from extract.inputs.eval_tokens import EvalSetError
from extract.inputs.icl_sequences import ICL_SEQUENCES_SCHEMA, icl_sequences_table
from extract.lake.partition_store import read_manifest
from extract.lake.tables import checkpoint_dir
from extract.measures.icl_scores import ICL_SCORES_SCHEMA, icl_surprisals
from extract.pipeline import extract_checkpoint
from extract.registry import suite_table_path
from extract.sources.mini_trainer import train_tokenizer

WORDS = "the cat sat on a mat while one dog ran far from home and the sun rose over every hill".split()


def _text(n_words: int, offset: int) -> str:
    return " ".join(WORDS[(offset + i * 7) % len(WORDS)] for i in range(n_words))


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return [
        Document("d1", "a", _text(400, 0)),
        Document("d2", "b", _text(5, 3)),  # too short for one span
        Document("d3", "c", _text(300, 5)),
    ]


@pytest.fixture(scope="module")
def tokenizer(documents):
    return train_tokenizer([d.text for d in documents], vocab_size=300)


def test_sequences_are_non_overlapping_spans_in_document_order(documents, tokenizer):
    target = 20
    table = icl_sequences_table(documents, tokenizer, target_position=target, max_sequences=1000)
    assert table.schema == ICL_SEQUENCES_SCHEMA
    rows = table.to_pylist()
    assert [r["sequence_id"] for r in rows] == list(range(len(rows)))
    assert all(len(r["token_ids"]) == target + 1 for r in rows)
    assert "d2" not in {r["doc_id"] for r in rows}
    for document in documents:
        ids = tokenizer(document.text, add_special_tokens=False)["input_ids"]
        spans = [r["token_ids"] for r in rows if r["doc_id"] == document.doc_id]
        # Back to back from the document's start: non-overlapping, in order, none skipped.
        assert sum(spans, []) == ids[: len(spans) * (target + 1)]
        assert len(spans) == len(ids) // (target + 1)
    assert [r["doc_id"] for r in rows] == sorted(r["doc_id"] for r in rows)

    capped = icl_sequences_table(documents, tokenizer, target_position=target, max_sequences=3)
    assert capped.num_rows == 3
    assert capped.to_pylist() == rows[:3]


def test_no_document_long_enough_is_refused(documents, tokenizer):
    with pytest.raises(EvalSetError, match="icl.target_position"):
        icl_sequences_table(documents, tokenizer, target_position=100_000, max_sequences=4)


def _models(suite, size, step, seeds):
    return {seed: suite.load_model(suite.checkpoint(size, seed, step), torch.device("cpu")) for seed in seeds}


def test_surprisals_match_a_computation_by_hand(micro_settings, micro_suite):
    config = micro_settings.icl
    sequences = pq.read_table(suite_table_path(micro_settings.paths.lake, "icl_sequences", "micro"))
    models = _models(micro_suite, "a", 8, (1, 2))
    scores = icl_surprisals(models, sequences, config, torch.device("cpu"))
    assert scores.schema == ICL_SCORES_SCHEMA
    assert scores.num_rows == 2 * sequences.num_rows

    target = config.target_position
    ids = sequences.column("token_ids").to_pylist()[1]
    with torch.no_grad():
        expected = {}
        for name, context in (("surprisal_short", config.short_context), ("surprisal_long", config.long_context)):
            logits = models[2](input_ids=torch.tensor([ids[target - context : target]])).logits[0, -1]
            expected[name] = -torch.log_softmax(logits.double(), dim=-1)[ids[target]].item()
    row = next(r for r in scores.to_pylist() if r["seed"] == 2 and r["sequence_id"] == 1)
    assert (row["short_context"], row["long_context"], row["target_position"]) == (
        config.short_context,
        config.long_context,
        target,
    )
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-4)


def test_batching_does_not_change_the_scores(micro_settings, micro_suite):
    sequences = pq.read_table(suite_table_path(micro_settings.paths.lake, "icl_sequences", "micro"))
    models = _models(micro_suite, "a", 8, (1,))
    config = micro_settings.icl
    one = IclConfig(config.short_context, config.long_context, config.target_position, config.max_sequences, 1)
    by_one = icl_surprisals(models, sequences, one, torch.device("cpu")).to_pandas()
    batched = icl_surprisals(models, sequences, config, torch.device("cpu")).to_pandas()
    for name in ("surprisal_short", "surprisal_long"):
        np.testing.assert_allclose(by_one[name], batched[name], rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_scores(micro_settings, micro_suite):
    sequences = pq.read_table(suite_table_path(micro_settings.paths.lake, "icl_sequences", "micro"))
    cpu = icl_surprisals(_models(micro_suite, "a", 8, (1,)), sequences, micro_settings.icl, torch.device("cpu"))
    cuda_models = {1: micro_suite.load_model(micro_suite.checkpoint("a", 1, 8), torch.device("cuda"))}
    cuda = icl_surprisals(cuda_models, sequences, micro_settings.icl, torch.device("cuda"))
    for name in ("surprisal_short", "surprisal_long"):
        np.testing.assert_allclose(cuda.column(name).to_numpy(), cpu.column(name).to_numpy(), rtol=1e-3)


def test_sequences_of_another_target_position_are_refused(micro_settings, micro_suite):
    sequences = pq.read_table(suite_table_path(micro_settings.paths.lake, "icl_sequences", "micro"))
    config = micro_settings.icl
    other = IclConfig(config.short_context, config.long_context, config.target_position + 1)
    with pytest.raises(EvalSetError, match="rebuild"):
        icl_surprisals(_models(micro_suite, "a", 8, (1,)), sequences, other, torch.device("cpu"))


def test_partition_holds_icl_scores(micro_settings):
    manifest = extract_checkpoint(micro_settings, "micro", "a", 8)
    partition = checkpoint_dir(micro_settings.paths.lake, "micro", "a", 8)
    n_sequences = pq.read_table(suite_table_path(micro_settings.paths.lake, "icl_sequences", "micro")).num_rows
    assert n_sequences == micro_settings.icl.max_sequences
    scores = pq.read_table(partition / "icl_scores.parquet")
    n_seeds = len(manifest["seeds"])
    assert scores.num_rows == n_seeds * n_sequences
    assert manifest["rows"]["icl_scores"] == n_seeds * n_sequences
    assert read_manifest(partition)["rows"]["icl_scores"] == n_seeds * n_sequences
    assert "icl" in manifest["timings_s"]
    frame = scores.to_pandas()
    assert np.isfinite(frame[["surprisal_short", "surprisal_long"]].to_numpy()).all()
    assert (frame[["surprisal_short", "surprisal_long"]] > 0).all().all()
    icl_score = (frame.surprisal_short - frame.surprisal_long).groupby(frame.seed).mean()
    print(f"micro a step 8 ICL score per seed: {icl_score.round(4).to_dict()}, mean {icl_score.mean():.4f}")


def test_repository_config_has_the_paper_defaults(tmp_path):
    assert load_settings(REPO_ROOT / "seedconv.toml", tmp_path).icl == IclConfig()
    # the paper's 500th token (footnote 2) is index 499
    assert IclConfig() == IclConfig(50, 400, 499, 64, 16)


@pytest.mark.parametrize(
    "document, message",
    [
        ("[icl]\nshort_context = 0", "icl.short_context"),
        ("[icl]\nshort_context = 400", "icl.long_context"),
        ("[icl]\nlong_context = 30", "icl.long_context"),
        ("[icl]\ntarget_position = 100", "icl.target_position"),
        ("[icl]\nmax_sequences = 0", "icl.max_sequences"),
        ("[icl]\nbatch_sequences = 'many'", "icl.batch_sequences"),
        ("[icl]\nbogus = 1", "unknown keys in \\[icl\\]"),
    ],
)
def test_bad_icl_settings_are_named(tmp_path, document, message):
    with pytest.raises(ConfigError, match=message):
        parse_settings(tomllib.loads(document), tmp_path)
