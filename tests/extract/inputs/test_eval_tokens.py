import numpy as np
import pyarrow.parquet as pq
import pytest

from extract.inputs.brown_corpus import Document
from extract.inputs.eval_tokens import EvalSetError, build_eval_tokens, eval_batches, eval_set_hash
from extract.registry import suite_table_path
from extract.sources.mini_trainer import train_tokenizer

TEXTS = [
    "The jury said the election was conducted fairly.",
    "A second document, with a comma and a full stop.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS * 20, vocab_size=300)


def test_windows_context_lengths_and_offsets(tokenizer):
    documents = [Document("d1", "news", TEXTS[0]), Document("d2", "news", TEXTS[1])]
    n_tokens = len(tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"]) + 3
    table = build_eval_tokens("test", documents, tokenizer, n_tokens=n_tokens, window=4).to_pylist()
    assert [row["position"] for row in table] == list(range(n_tokens))
    assert [row["context_len"] for row in table][:6] == [0, 1, 2, 3, 0, 1]
    # Windows restart at every document: a new window id and context 0.
    first_d2 = next(row for row in table if row["doc_id"] == "d2")
    assert first_d2["context_len"] == 0
    for row in table:
        text = TEXTS[0] if row["doc_id"] == "d1" else TEXTS[1]
        assert row["token_text"] == text[row["char_start"] : row["char_end"]]
        assert tokenizer.convert_tokens_to_ids(tokenizer.tokenize(row["token_text"])) == [row["token_id"]]


def test_too_few_heldout_tokens_is_an_error(tokenizer):
    with pytest.raises(EvalSetError, match="lower eval.n_tokens"):
        build_eval_tokens("test", [Document("d1", "news", TEXTS[0])], tokenizer, n_tokens=10_000, window=8)


def test_batches_put_bos_before_each_window(tokenizer):
    table = build_eval_tokens("test", [Document("d1", "news", TEXTS[0] * 3)], tokenizer, n_tokens=10, window=4)
    batches = eval_batches(table, bos_token_id=0)
    ids = table.column("token_id").to_pylist()
    assert batches.input_ids.shape == (3, 4)
    assert batches.input_ids[0].tolist() == [0, *ids[:3]]
    assert batches.targets[0].tolist() == ids[:4]
    assert batches.position[2].tolist() == [8, 9, -1, -1]  # the last window is padded
    assert eval_set_hash(table) != eval_set_hash(table.slice(0, 9))


def test_micro_eval_set_is_held_out_brown(micro_settings):
    from extract.pipeline import corpus_split

    tokens = pq.read_table(suite_table_path(micro_settings.paths.lake, "eval_tokens", "micro"))
    assert tokens.num_rows == micro_settings.eval.n_tokens
    train, heldout = corpus_split(micro_settings)
    heldout_ids = {d.doc_id for d in heldout}
    assert set(tokens.column("doc_id").to_pylist()) <= heldout_ids
    assert not heldout_ids & {d.doc_id for d in train}
    context = np.asarray(tokens.column("context_len"))
    assert context.min() == 0 and context.max() == micro_settings.eval.window - 1
