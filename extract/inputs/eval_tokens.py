"""The evaluation tokens every checkpoint of a suite is run on, and the unigram reference.

The evaluation set is cut from the suite's evaluation corpus (extract/inputs/text_corpus.py;
by default held-out Brown documents, which no mini-suite run trains on): each document is
tokenized with the suite's tokenizer and split into windows of at most `window` tokens, one
every `stride` tokens; windows are taken in document order until `n_tokens` targets are
collected, each token scored once (`window_spans`). Each window is fed to a causal model behind
a BOS token, so every token of it is predicted and its context length (the number of real
tokens before it in the window) runs from 0.

A masked LM sees the same windows as `[CLS] window [SEP]` and predicts each token from a copy of
its window in which that token, and only that token, is replaced by `[MASK]`: the prediction is
read at the masked position, so it is the masked token's (`MaskedEvalBatches`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers import PreTrainedTokenizerBase

from extract.inputs.brown_corpus import Document
from extract.lake.tables import LAKE, SUITE, LakeTable

EVAL_TOKENS_SCHEMA = pa.schema(
    [
        ("eval_set", pa.string()),
        ("position", pa.int32()),
        ("doc_id", pa.string()),
        ("window_id", pa.int32()),
        ("token_id", pa.int32()),
        ("token_text", pa.string()),
        ("char_start", pa.int32()),
        ("char_end", pa.int32()),
        ("context_len", pa.int32()),
    ]
)


EVAL_DOCUMENTS_SCHEMA = pa.schema(
    [("eval_set", pa.string()), ("doc_id", pa.string()), ("category", pa.string()), ("text", pa.string())]
)
UNIGRAM_SCHEMA = pa.schema([("token_id", pa.int32()), ("count", pa.int64())])

EVAL_DOCUMENTS = LakeTable(
    "eval_documents", EVAL_DOCUMENTS_SCHEMA, LAKE, "The documents of every evaluation set, as text."
)
EVAL_TOKENS = LakeTable(
    "eval_tokens", EVAL_TOKENS_SCHEMA, SUITE, "Per suite, the evaluation tokens with context lengths."
)
UNIGRAM = LakeTable("unigram", UNIGRAM_SCHEMA, SUITE, "Per suite, token counts of the unigram reference corpus.")
TOKEN_FREQUENCY = LakeTable(
    "token_frequency", UNIGRAM_SCHEMA, SUITE, "Per suite, token counts of the frequency corpus (frequency bins)."
)


class EvalSetError(ValueError):
    """The evaluation set cannot be built or does not fit the models; the message says why."""


def eval_documents_table(eval_set: str, documents: Sequence[Document]) -> pa.Table:
    return pa.table(
        {
            "eval_set": [eval_set] * len(documents),
            "doc_id": [d.doc_id for d in documents],
            "category": [d.category for d in documents],
            "text": [d.text for d in documents],
        },
        schema=EVAL_DOCUMENTS_SCHEMA,
    )


def window_spans(n: int, window: int, stride: int) -> Iterator[tuple[int, int, int]]:
    """(start, first scored, end) of each window over a document of `n` tokens.

    Windows start every `stride` tokens and hold up to `window`; each token is scored once, in
    the first window that reaches it, which is the one that gives it the most context: a window
    after the first scores only the tokens past the previous window's end (its last `stride`).
    """
    scored_to = 0
    for start in range(0, n, stride):
        end = min(start + window, n)
        if end > scored_to:
            yield start, scored_to, end
            scored_to = end
        if end == n:
            return


def build_eval_tokens(
    eval_set: str,
    documents: Sequence[Document],
    tokenizer: PreTrainedTokenizerBase,
    n_tokens: int,
    window: int,
    stride: int | None = None,
) -> pa.Table:
    """One row per scored token: its id, text, character span and context length (the tokens
    before it in its window), windows of `window` tokens every `stride` (default: `window`)."""
    rows: dict[str, list] = {name: [] for name in EVAL_TOKENS_SCHEMA.names}
    window_id = 0
    for document in documents:
        encoding = tokenizer(document.text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        for start, first, end in window_spans(len(ids), window, stride or window):
            for index in range(first, end):
                if len(rows["position"]) == n_tokens:
                    return pa.table(rows, schema=EVAL_TOKENS_SCHEMA)
                char_start, char_end = offsets[index]
                rows["eval_set"].append(eval_set)
                rows["position"].append(len(rows["position"]))
                rows["doc_id"].append(document.doc_id)
                rows["window_id"].append(window_id)
                rows["token_id"].append(ids[index])
                rows["token_text"].append(document.text[char_start:char_end])
                rows["char_start"].append(char_start)
                rows["char_end"].append(char_end)
                rows["context_len"].append(index - start)
            window_id += 1
    if len(rows["position"]) == n_tokens:
        return pa.table(rows, schema=EVAL_TOKENS_SCHEMA)
    raise EvalSetError(
        f"eval.n_tokens is {n_tokens} but the {len(documents)} documents of the evaluation corpus give only "
        f"{len(rows['position'])} tokens: lower eval.n_tokens, or give a larger corpus"
    )


def table_hash(table: pa.Table) -> str:
    """Identifies a table's values (for the manifest): the unigram counts a partition used."""
    digest = hashlib.sha256()
    for column in table.columns:
        digest.update(column.to_numpy().astype(np.int64).tobytes())
    return "sha256:" + digest.hexdigest()


def eval_set_hash(eval_tokens: pa.Table) -> str:
    """Identifies the exact token sequence and windowing the models were run on."""
    digest = hashlib.sha256()
    for column in ("token_id", "window_id", "context_len"):
        digest.update(eval_tokens.column(column).to_numpy().astype(np.int64).tobytes())
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class EvalBatches:
    """The evaluation set as model inputs: windows of token ids behind a BOS token.

    input_ids[w, i] is the token before target i of window w (BOS for i = 0); position[w, i] is
    that target's row in eval_tokens, or -1 where the target is not scored in this window (a
    short window's padding, or an overlapping window's first tokens, scored in the window before).
    """

    input_ids: torch.Tensor  # [W, L] int64
    targets: torch.Tensor  # [W, L] int64
    position: torch.Tensor  # [W, L] int64

    def batches(self, windows_per_batch: int, pad_multiple: int = 64):
        """(windows, input_ids, targets, position) per batch of windows of similar length, each cut
        to its longest window rounded up to `pad_multiple` tokens (at most the full width).

        A document's last window is usually short; batched with full ones, or alone at the full
        width, its padding would cost as much of the forward pass as a full window. Cutting
        padding off the end changes no real position of a causal model, and the rounding keeps
        the number of distinct shapes, each a compilation of the body, small."""
        scored = self.position >= 0
        width = self.input_ids.shape[1]
        # The column after a window's last scored target (overlapping windows score their end).
        lengths = torch.where(scored.any(1), width - scored.flip(1).int().argmax(1), 1)
        order = torch.argsort(lengths, stable=True)
        for start in range(0, len(order), windows_per_batch):
            windows = order[start : start + windows_per_batch]
            cut = min(-(-int(lengths[windows].max()) // pad_multiple) * pad_multiple, width)
            yield windows, self.input_ids[windows, :cut], self.targets[windows, :cut], self.position[windows, :cut]


def eval_batches(eval_tokens: pa.Table, bos_token_id: int) -> EvalBatches:
    if eval_tokens.num_rows == 0:
        raise EvalSetError("the evaluation set is empty")
    # In position order, rows are the documents' tokens in order, with no gaps.
    tokens = eval_tokens.sort_by("position")
    window_ids = tokens.column("window_id").to_numpy()
    context_len = tokens.column("context_len").to_numpy()
    token_ids = tokens.column("token_id").to_numpy()
    positions = tokens.column("position").to_numpy()
    doc_ids = tokens.column("doc_id").to_numpy(zero_copy_only=False)
    _, first_row, window_index = np.unique(window_ids, return_index=True, return_inverse=True)
    n_windows, length = window_index.max() + 1, context_len.max() + 1

    targets = np.full((n_windows, length), bos_token_id, dtype=np.int64)
    position = np.full((n_windows, length), -1, dtype=np.int64)
    targets[window_index, context_len] = token_ids
    position[window_index, context_len] = positions
    # An overlapping window's first tokens were scored in earlier windows: they are the rows just
    # before its first scored row, and they are fed to the model but not scored again.
    for window in np.flatnonzero(context_len[first_row]):
        row, lead = first_row[window], context_len[first_row[window]]
        if row < lead or len(set(doc_ids[row - lead : row + 1])) != 1:
            raise EvalSetError("eval_tokens lacks the tokens before an overlapping window: rebuild the eval set")
        targets[window, :lead] = token_ids[row - lead : row]
    input_ids = np.concatenate([np.full((n_windows, 1), bos_token_id), targets[:, :-1]], axis=1)
    return EvalBatches(torch.from_numpy(input_ids), torch.from_numpy(targets), torch.from_numpy(position))


@dataclass(frozen=True)
class MaskedEvalBatches:
    """The evaluation set as masked-LM inputs: one masked copy of its window per target.

    windows[w] is `[CLS]` + window w's tokens + `[SEP]`, right-padded with `[PAD]` (attention False).
    Target i (row i of eval_tokens, in position order) is predicted from windows[window_index[i]]
    with the token at column offset[i] (its context_len + 1) replaced by `[MASK]`.
    """

    windows: torch.Tensor  # [W, L + 2] int64
    attention: torch.Tensor  # [W, L + 2] int64, 1 on real and special tokens
    window_index: torch.Tensor  # [N] int64
    offset: torch.Tensor  # [N] int64, the masked column
    targets: torch.Tensor  # [N] int64, the masked token
    positions: np.ndarray  # [N] int32, eval_tokens.position, ascending
    mask_token_id: int

    def batches(self, copies_per_batch: int):
        """(input_ids [B, L + 2], attention_mask, masked column [B]) for each run of B targets."""
        for start in range(0, len(self.targets), copies_per_batch):
            stop = start + copies_per_batch
            rows, columns = self.window_index[start:stop], self.offset[start:stop]
            input_ids = self.windows[rows].clone()
            input_ids[torch.arange(len(rows)), columns] = self.mask_token_id
            yield input_ids, self.attention[rows], columns


def masked_eval_batches(
    eval_tokens: pa.Table, cls_id: int, sep_id: int, mask_id: int, pad_id: int
) -> MaskedEvalBatches:
    if eval_tokens.num_rows == 0:
        raise EvalSetError("the evaluation set is empty")
    order = np.argsort(eval_tokens.column("position").to_numpy(), kind="stable")
    window_ids = eval_tokens.column("window_id").to_numpy()[order]
    context_len = eval_tokens.column("context_len").to_numpy()[order].astype(np.int64)
    token_ids = eval_tokens.column("token_id").to_numpy()[order].astype(np.int64)
    _, window_index = np.unique(window_ids, return_inverse=True)
    n_windows, length = window_index.max() + 1, context_len.max() + 1

    windows = np.full((n_windows, length + 2), pad_id, dtype=np.int64)
    windows[:, 0] = cls_id
    windows[window_index, context_len + 1] = token_ids
    lengths = np.bincount(window_index, minlength=n_windows)
    windows[np.arange(n_windows), lengths + 1] = sep_id
    attention = (np.arange(length + 2)[None, :] <= (lengths + 1)[:, None]).astype(np.int64)
    return MaskedEvalBatches(
        windows=torch.from_numpy(windows),
        attention=torch.from_numpy(attention),
        window_index=torch.from_numpy(window_index.astype(np.int64)),
        offset=torch.from_numpy(context_len + 1),
        targets=torch.from_numpy(token_ids),
        positions=eval_tokens.column("position").to_numpy()[order].astype(np.int32),
        mask_token_id=mask_id,
    )


def unigram_counts(token_stream: np.ndarray) -> pa.Table:
    """Token counts of a reference corpus, the basis of the unigram distribution."""
    token_ids, counts = np.unique(token_stream, return_counts=True)
    return pa.table({"token_id": token_ids.astype(np.int32), "count": counts.astype(np.int64)}, schema=UNIGRAM_SCHEMA)


def read_counts(source: str, vocab_size: int) -> pa.Table | None:
    """A Parquet file of (token_id, count) as the unigram counts; None when `source` is not one
    (another file, a folder or a dataset, to be read as text)."""
    path = Path(source)
    if path.suffix.lower() != ".parquet" or not path.is_file():
        return None
    names = pq.read_schema(path).names
    if not {"token_id", "count"} <= set(names):
        return None
    counts = pq.read_table(path, columns=["token_id", "count"])
    ids, values = counts.column("token_id").to_numpy(), counts.column("count").to_numpy()
    if len(ids) == 0 or values.sum() <= 0:
        raise EvalSetError(f"the unigram counts {path} are empty")
    if ids.min() < 0 or ids.max() >= vocab_size or values.min() < 0 or len(np.unique(ids)) != len(ids):
        raise EvalSetError(
            f"the unigram counts {path} must have distinct token ids in [0, {vocab_size}) (the tokenizer's) "
            "and counts of at least 0"
        )
    return pa.table({"token_id": ids.astype(np.int32), "count": values.astype(np.int64)}, schema=UNIGRAM_SCHEMA)
