import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from extract.inputs.brown_corpus import Document
from extract.inputs.eval_tokens import (
    EvalBatches,
    EvalSetError,
    build_eval_tokens,
    eval_batches,
    eval_set_hash,
    window_spans,
)
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


@pytest.mark.parametrize(
    ("n", "window", "stride"), [(10, 4, 2), (11, 4, 3), (9, 4, 4), (3, 4, 1), (2048 * 3 + 5, 2048, 1024)]
)
def test_overlapping_windows_score_every_token_once_with_the_most_context(n, window, stride):
    spans = list(window_spans(n, window, stride))
    scored = [index for _, first, end in spans for index in range(first, end)]
    assert scored == list(range(n))  # each token once, in order
    for start, first, end in spans:
        assert end - start <= window and start % stride == 0
        # No window that holds the token gives it more context than the one that scores it.
        for index in range(first, end):
            best = max(index - s for s in range(0, index + 1, stride) if index < s + window)
            assert index - start == best


def test_an_overlapping_window_is_fed_its_earlier_tokens_but_scores_only_its_new_ones(tokenizer):
    document = Document("d1", "news", " ".join(TEXTS) * 3)
    table = build_eval_tokens("test", [document], tokenizer, n_tokens=20, window=8, stride=4)
    ids = table.column("token_id").to_pylist()
    assert table.column("context_len").to_pylist() == [*range(8), *([4, 5, 6, 7] * 3)]
    batches = eval_batches(table, bos_token_id=0)
    assert batches.targets[1].tolist() == ids[4:12]  # tokens 4..7 again, as context
    assert batches.input_ids[1].tolist() == [0, *ids[4:11]]
    assert batches.position[1].tolist() == [-1, -1, -1, -1, 8, 9, 10, 11]
    assert eval_set_hash(table) != eval_set_hash(build_eval_tokens("test", [document], tokenizer, 20, 8))


def test_strided_windows_give_each_token_the_models_prediction_from_its_whole_window(micro_suite):
    """The extraction's batches, run through a micro model, predict each token exactly as the model
    does given the window's tokens before it, read straight from the document."""
    tokenizer = micro_suite.load_tokenizer()
    checkpoint = micro_suite.checkpoint(micro_suite.sizes()[0], micro_suite.seeds("a")[0], micro_suite.steps("a")[-1])
    model = micro_suite.load_model(checkpoint, torch.device("cpu"))
    text = " ".join(TEXTS * 4)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    window, stride, bos = 12, 5, tokenizer.eos_token_id
    table = build_eval_tokens(
        "test", [Document("d", "", text)], tokenizer, n_tokens=len(ids), window=window, stride=stride
    )
    batches = eval_batches(table, bos)
    with torch.no_grad():
        logits = model(input_ids=batches.input_ids).logits.log_softmax(-1)
    scored = batches.position >= 0
    from_batches = logits[scored].gather(1, batches.targets[scored][:, None])[:, 0]
    order = batches.position[scored].argsort()
    for position, (row, got) in enumerate(zip(table.to_pylist(), from_batches[order].tolist(), strict=True)):
        context = ids[position - row["context_len"] : position]
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([[bos, *context]])).logits[0, -1].log_softmax(-1)
        assert got == pytest.approx(alone[ids[position]].item(), abs=1e-5)


def test_batches_cut_short_windows_to_their_length():
    """A short window (a document's end) is batched with windows of its length and cut to it,
    rounded up to 64 tokens; an overlapping window, scored at its end, keeps its full width."""
    position = torch.full((3, 256), -1)
    position[0] = torch.arange(256)
    position[1, :70] = torch.arange(256, 326)  # the document's last 70 tokens
    position[2, 100:] = torch.arange(326, 482)  # overlapping: its first 100 tokens are context
    ids = torch.arange(3 * 256).reshape(3, 256)
    batches = EvalBatches(ids, ids + 1, position)
    alone = {int(windows[0]): input_ids.shape[1] for windows, input_ids, _, _ in batches.batches(1)}
    assert alone == {1: 128, 0: 256, 2: 256}
    in_pairs = list(batches.batches(2))
    assert [windows.tolist() for windows, *_ in in_pairs] == [[1, 0], [2]]  # shortest first
    for windows, input_ids, targets, cut in in_pairs:
        assert torch.equal(input_ids, ids[windows, : input_ids.shape[1]]) and torch.equal(targets, input_ids + 1)
        assert torch.equal(cut, position[windows, : input_ids.shape[1]])
        assert (position[windows, input_ids.shape[1] :] == -1).all()  # nothing scored is cut off
