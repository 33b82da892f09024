"""BLiMP minimal pairs: loading the shared copy and BLiMP's own layout, selection, errors, and
sentence scores checked against the Hugging Face model's own token log-probabilities."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from extract.config import SHARED_BLIMP, BlimpConfig
from extract.inputs.blimp_pairs import (
    BLIMP_PAIRS_SCHEMA,
    BlimpError,
    blimp_pairs_table,
    blimp_sentence_batch,
    blimp_set_hash,
    load_blimp,
    select_pairs,
)
from extract.inputs.eval_tokens import EvalSetError
from extract.measures.blimp_scores import BLIMP_SCORES_SCHEMA, blimp_scores_table
from extract.measures.text_loglik import HuggingFaceScorer, text_logprobs
from extract.sources.suites import SuiteUnavailable

CPU = torch.device("cpu")
KEYS = {"uid", "field", "linguistics_term", "pair_id", "sentence_good", "sentence_bad"}


def original_record(uid: str, pair_id: int, good: str, bad: str) -> dict:
    """A line as BLiMP's own data/<UID>.jsonl files have it, extra fields included."""
    return {
        "sentence_good": good,
        "sentence_bad": bad,
        "field": "syntax",
        "linguistics_term": "island_effects",
        "UID": uid,
        "simple_LM_method": True,
        "one_prefix_method": False,
        "two_prefix_method": False,
        "lexically_identical": True,
        "pairID": str(pair_id),
    }


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


@pytest.fixture(scope="module")
def slim_pairs() -> list[dict]:
    return load_blimp(BlimpConfig())


# ------------------------------------------------------------------------------- loading


def test_the_shared_slim_copy_loads_every_paradigm(slim_pairs):
    assert len(slim_pairs) == 67_000
    assert all(set(pair) == KEYS for pair in slim_pairs)
    counts = Counter(pair["uid"] for pair in slim_pairs)
    assert len(counts) == 67 and set(counts.values()) == {1000}
    first = slim_pairs[0]
    assert first["uid"] == "adjunct_island" and first["pair_id"] == "0"
    assert first["field"] == "syntax" and first["linguistics_term"] == "island_effects"
    assert first["sentence_good"] == "Who should Derek hug after shocking Richard?"
    assert first["sentence_bad"] == "Who should Derek hug Richard after shocking?"


def test_default_selection_keeps_the_first_twenty_pair_ids_of_each_paradigm(slim_pairs):
    selected = select_pairs(slim_pairs, BlimpConfig())
    assert len(selected) == 67 * 20 == 1340
    uids = sorted({pair["uid"] for pair in slim_pairs})
    assert [(p["uid"], p["pair_id"]) for p in selected] == [(uid, str(i)) for uid in uids for i in range(20)]
    # Numeric order: "2" comes before "10", and the input order does not matter.
    assert select_pairs(slim_pairs[::-1], BlimpConfig()) == selected


def test_selecting_one_paradigm(slim_pairs):
    selected = select_pairs(slim_pairs, BlimpConfig(paradigms=("adjunct_island",), pairs_per_paradigm=5))
    expected = [p for p in slim_pairs if p["uid"] == "adjunct_island" and int(p["pair_id"]) < 5]
    assert selected == sorted(expected, key=lambda p: int(p["pair_id"])) and len(selected) == 5


def test_the_original_per_paradigm_layout(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    # pairIDs out of order and past 9, to see the numeric sort.
    write_jsonl(
        folder / "wh_island.jsonl",
        [
            original_record("wh_island", i, f"What did you wonder {i}?", f"What did you wonder who {i}?")
            for i in (10, 2, 0)
        ],
    )
    write_jsonl(folder / "adjunct_island.jsonl", [original_record("adjunct_island", 0, "Who left?", "Who left it?")])
    (folder / "README.md").write_text("not data")
    pairs = load_blimp(BlimpConfig(source=str(folder)))
    assert len(pairs) == 4 and all(set(pair) == KEYS for pair in pairs)
    selected = select_pairs(pairs, BlimpConfig(source=str(folder), pairs_per_paradigm=2))
    assert [(p["uid"], p["pair_id"]) for p in selected] == [
        ("adjunct_island", "0"),
        ("wh_island", "0"),
        ("wh_island", "2"),
    ]
    # Fewer pairs than asked is no error: a paradigm gives what it has.
    assert len(select_pairs(pairs, BlimpConfig(source=str(folder), pairs_per_paradigm=50))) == 4

    single = tmp_path / "one.jsonl"
    write_jsonl(single, [original_record("wh_island", 3, "Good one.", "Bad one.")])
    assert load_blimp(BlimpConfig(source=str(single))) == [
        {
            "uid": "wh_island",
            "field": "syntax",
            "linguistics_term": "island_effects",
            "pair_id": "3",
            "sentence_good": "Good one.",
            "sentence_bad": "Bad one.",
        }
    ]
    gz = tmp_path / "data" / "more.jsonl.gz"
    with gzip.open(gz, "wt") as out:
        out.write(json.dumps(original_record("zz_paradigm", 1, "A cat sat.", "A cat sit.")) + "\n\n")
    assert len(load_blimp(BlimpConfig(source=str(folder)))) == 5


def test_a_hub_snapshot_of_parquet_files(tmp_path, monkeypatch):
    """The Hub's layout: a Parquet file per paradigm folder, `pair_id` an integer, plus metadata."""
    import huggingface_hub

    for uid in ("b_paradigm", "a_paradigm"):
        (tmp_path / uid).mkdir()
        records = [original_record(uid, i, f"Good {i}.", f"Bad {i}.") for i in range(3)]
        for record in records:
            record["pair_id"] = int(record.pop("pairID"))
        pq.write_table(pa.Table.from_pylist(records), tmp_path / uid / "train-00000-of-00001.parquet")
    (tmp_path / "dataset_infos.json").write_text(json.dumps({"a_paradigm": {"features": {}}}))
    calls = []

    def snapshot_download(**kwargs):
        calls.append(kwargs)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    config = BlimpConfig(source="hub:nyu-mll/blimp", pairs_per_paradigm=2)
    pairs = select_pairs(load_blimp(config), config)
    assert calls[0]["repo_id"] == "nyu-mll/blimp" and calls[0]["repo_type"] == "dataset"
    assert [(p["uid"], p["pair_id"]) for p in pairs] == [
        ("a_paradigm", "0"),
        ("a_paradigm", "1"),
        ("b_paradigm", "0"),
        ("b_paradigm", "1"),
    ]


# ------------------------------------------------------------------------------- errors


def test_bad_input_is_named(tmp_path):
    path = tmp_path / "pairs.jsonl"
    good = json.dumps(original_record("wh_island", 0, "Who left?", "Who left it?"))
    path.write_text(good + "\n" + '{"sentence_good": "oops"\n')
    with pytest.raises(BlimpError, match=rf"{path.name} line 2: not valid JSON"):
        load_blimp(BlimpConfig(source=str(path)))

    record = original_record("wh_island", 1, "Who left?", "Who left it?")
    del record["linguistics_term"]
    write_jsonl(path, [record])
    with pytest.raises(BlimpError, match=r"line 1: missing field\(s\) \['linguistics_term'\]"):
        load_blimp(BlimpConfig(source=str(path)))

    write_jsonl(path, [original_record("wh_island", 1, "Who left?", " ")])
    with pytest.raises(BlimpError, match="line 1: field 'sentence_bad' is empty"):
        load_blimp(BlimpConfig(source=str(path)))

    write_jsonl(path, [original_record("wh_island", 1, "A.", "B."), original_record("wh_island", 1, "C.", "D.")])
    with pytest.raises(BlimpError, match=r"line 2: duplicate pair \(UID 'wh_island', pairID '1'\), first at .*line 1"):
        load_blimp(BlimpConfig(source=str(path)))

    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(BlimpError, match=f"{missing} does not exist"):
        load_blimp(BlimpConfig(source=str(missing)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BlimpError, match=f"{empty} is a folder without .jsonl"):
        load_blimp(BlimpConfig(source=str(empty)))


def test_an_unknown_paradigm_lists_the_known_ones(slim_pairs):
    with pytest.raises(BlimpError, match=r"\['no_such_paradigm'\].*it has \['adjunct_island', 'anaphor_gender_agr"):
        select_pairs(slim_pairs, BlimpConfig(paradigms=("adjunct_island", "no_such_paradigm")))


def test_the_hub_offline_says_to_use_the_local_copy(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache, whatever this machine has
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SuiteUnavailable, match=r"'nyu-mll/blimp'.*local copy, blimp.source"):
        load_blimp(BlimpConfig(source="hub:nyu-mll/blimp"))


# ------------------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def micro(micro_suite):
    model = micro_suite.load_model(micro_suite.checkpoint("b", 1, 8), CPU)
    return model, micro_suite.load_tokenizer()


def hand_logprob(model, token_ids: list[int]) -> tuple[float, np.ndarray]:
    """sum_t log p(x_t | x_<t) over all but the first token (BOS), and the per-token terms."""
    with torch.inference_mode():
        log_p = torch.log_softmax(model(input_ids=torch.tensor([token_ids])).logits[0].double(), dim=-1)
    terms = log_p[torch.arange(len(token_ids) - 1), torch.tensor(token_ids[1:])].numpy()
    return float(terms.sum()), terms


def few_pairs(slim_pairs, tokenizer) -> pa.Table:
    # Three paradigms, so the sentences differ in length and the batch pads.
    config = BlimpConfig(
        paradigms=("adjunct_island", "irregular_plural_subject_verb_agreement_1", "wh_island"), pairs_per_paradigm=2
    )
    return blimp_pairs_table(select_pairs(slim_pairs, config), tokenizer)


def test_pairs_table(slim_pairs, micro):
    _, tokenizer = micro
    table = few_pairs(slim_pairs, tokenizer)
    assert table.schema == BLIMP_PAIRS_SCHEMA and table.num_rows == 6
    assert table.column("pair_index").to_pylist() == list(range(6))
    row = table.slice(0, 1).to_pylist()[0]
    assert row["uid"] == "adjunct_island" and row["pair_id"] == "0"
    assert row["n_tokens_good"] == len(tokenizer(row["sentence_good"], add_special_tokens=False)["input_ids"])
    assert row["n_tokens_bad"] == len(tokenizer(row["sentence_bad"], add_special_tokens=False)["input_ids"])


def micro_logprobs(model):
    return HuggingFaceScorer(model)


def test_scores_are_the_models_own_token_log_probs(slim_pairs, micro):
    model, tokenizer = micro
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    table = few_pairs(slim_pairs, tokenizer)
    plain = text_logprobs(micro_logprobs(model), blimp_sentence_batch(table, tokenizer, bos), 5, CPU)
    with_eos = text_logprobs(micro_logprobs(model), blimp_sentence_batch(table, tokenizer, bos, eos), 5, CPU)
    assert plain.dtype == np.float64 and plain.shape == with_eos.shape == (12,)
    pairs = table.to_pylist()
    for i in (0, 3, 5):
        for offset, kind in enumerate(("good", "bad")):
            row = 2 * i + offset  # good and bad interleaved
            ids = tokenizer(pairs[i][f"sentence_{kind}"], add_special_tokens=False)["input_ids"]
            expected_plain, _ = hand_logprob(model, [bos, *ids])
            expected_eos, terms = hand_logprob(model, [bos, *ids, eos])
            assert plain[row] == pytest.approx(expected_plain, abs=1e-4)
            assert with_eos[row] == pytest.approx(expected_eos, abs=1e-4)
            # The end-of-text token adds exactly its own log-probability after the sentence.
            assert with_eos[row] - plain[row] == pytest.approx(terms[-1], abs=1e-4)
    assert np.all(plain < 0) and np.all(with_eos < plain)


@pytest.mark.parametrize("append_eos", [False, True])
def test_padding_does_not_change_a_score(slim_pairs, micro, append_eos):
    """Each pair alone scores as it does in a batch padded to longer sentences."""
    model, tokenizer = micro
    bos = tokenizer.bos_token_id
    eos = tokenizer.eos_token_id if append_eos else None
    table = few_pairs(slim_pairs, tokenizer)
    batch = blimp_sentence_batch(table, tokenizer, bos, eos)
    lengths = batch.mask.sum(dim=1)
    assert lengths.min() < lengths.max(), "the batch pads"
    scores = text_logprobs(micro_logprobs(model), batch, 12, CPU)
    for i in range(table.num_rows):
        alone = text_logprobs(
            micro_logprobs(model), blimp_sentence_batch(table.slice(i, 1), tokenizer, bos, eos), 2, CPU
        )
        np.testing.assert_allclose(alone, scores[2 * i : 2 * i + 2], atol=1e-4, rtol=0)


def test_batches_group_sentences_of_similar_length(slim_pairs, micro):
    """Every sentence in exactly one batch, cut to its batch's longest rounded up to 8 tokens
    (at most the full width)."""
    _, tokenizer = micro
    batch = blimp_sentence_batch(few_pairs(slim_pairs, tokenizer), tokenizer, tokenizer.bos_token_id)
    lengths = batch.mask.sum(dim=1)
    seen, longest = [], []
    for rows, input_ids, targets, mask in batch.batches(4):
        assert input_ids.shape == targets.shape == mask.shape == (len(rows), input_ids.shape[1])
        rounded = -(-int(lengths[rows].max()) // 8) * 8
        assert input_ids.shape[1] == min(rounded, batch.input_ids.shape[1])
        assert torch.equal(mask.sum(dim=1), lengths[rows]), "no real token is cut"
        assert torch.equal(targets, batch.targets[rows, : targets.shape[1]])
        seen += rows.tolist()
        longest.append(int(lengths[rows].max()))
    assert sorted(seen) == list(range(len(lengths)))
    assert longest == sorted(longest) and longest[0] < longest[-1]


def test_stale_token_counts_are_refused(slim_pairs, micro):
    _, tokenizer = micro
    table = few_pairs(slim_pairs, tokenizer)
    index = table.schema.get_field_index("n_tokens_bad")
    stale = table.set_column(
        index, "n_tokens_bad", pa.array([n + 1 for n in table.column(index).to_pylist()], pa.int32())
    )
    with pytest.raises(EvalSetError, match="blimp_pairs no longer encode"):
        blimp_sentence_batch(stale, tokenizer, tokenizer.bos_token_id)


# ------------------------------------------------------------------------------- tables and hash


def test_scores_table_rows_and_types():
    per_seed = {3: np.array([-1.0, -2.0, -3.0, -4.0]), 1: np.array([-5.0, -6.0, -7.0, -8.0])}
    table = blimp_scores_table(per_seed)
    assert table.schema == BLIMP_SCORES_SCHEMA
    assert table.to_pylist() == [
        {"seed": 1, "pair_index": 0, "logprob_good": -5.0, "logprob_bad": -6.0},
        {"seed": 1, "pair_index": 1, "logprob_good": -7.0, "logprob_bad": -8.0},
        {"seed": 3, "pair_index": 0, "logprob_good": -1.0, "logprob_bad": -2.0},
        {"seed": 3, "pair_index": 1, "logprob_good": -3.0, "logprob_bad": -4.0},
    ]
    with pytest.raises(ValueError, match="2 x pairs"):
        blimp_scores_table({1: np.zeros(3)})
    with pytest.raises(ValueError, match="equal in length"):
        blimp_scores_table({1: np.zeros(2), 2: np.zeros(4)})
    assert blimp_scores_table({}).num_rows == 0


def test_set_hash_changes_with_eos_and_pairs(slim_pairs, micro):
    _, tokenizer = micro
    table = few_pairs(slim_pairs, tokenizer)
    base = blimp_set_hash(table, False)
    assert base.startswith("sha256:") and base == blimp_set_hash(table, False)
    assert blimp_set_hash(table, True) != base
    assert blimp_set_hash(table.slice(0, 5), False) != base
    swapped = table.set_column(5, "sentence_good", table.column("sentence_bad"))
    assert blimp_set_hash(swapped, False) != base


def test_shared_copy_path_is_the_default():
    assert BlimpConfig().source == str(SHARED_BLIMP) and SHARED_BLIMP.exists()
