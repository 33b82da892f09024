"""The evaluation tokens every checkpoint of a suite is run on, and the unigram reference.

The evaluation set is cut from held-out Brown documents, which no mini-suite run trains on:
each document is tokenized with the suite's tokenizer and split into windows of at most
`window` tokens; windows are taken in document order until `n_tokens` targets are collected.
Each window is fed to a causal model behind a BOS token, so every token of it is predicted and
its context length (the number of real tokens before it in the window) runs from 0.

A masked LM sees the same windows as `[CLS] window [SEP]` and predicts each token from a copy of
its window in which that token, and only that token, is replaced by `[MASK]`: the prediction is
read at the masked position, so it is the masked token's (`MaskedEvalBatches`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
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

EVAL_DOCUMENTS = LakeTable("eval_documents", EVAL_DOCUMENTS_SCHEMA, LAKE, "The held-out Brown documents, as text.")
EVAL_TOKENS = LakeTable(
    "eval_tokens", EVAL_TOKENS_SCHEMA, SUITE, "Per suite, the evaluation tokens with context lengths."
)
UNIGRAM = LakeTable("unigram", UNIGRAM_SCHEMA, SUITE, "Per suite, token counts of the training split.")


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


def build_eval_tokens(
    eval_set: str,
    documents: Sequence[Document],
    tokenizer: PreTrainedTokenizerBase,
    n_tokens: int,
    window: int,
) -> pa.Table:
    """One row per predicted token: its id, text, character span and context length."""
    rows: dict[str, list] = {name: [] for name in EVAL_TOKENS_SCHEMA.names}
    window_id = 0
    for document in documents:
        encoding = tokenizer(document.text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        for start in range(0, len(ids), window):
            for context_len, index in enumerate(range(start, min(start + window, len(ids)))):
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
                rows["context_len"].append(context_len)
            window_id += 1
    raise EvalSetError(
        f"eval.n_tokens is {n_tokens} but the {len(documents)} held-out documents give only "
        f"{len(rows['position'])} tokens: lower eval.n_tokens or eval.heldout_every"
    )


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
    that target's row in eval_tokens, or -1 where a short window is padded.
    """

    input_ids: torch.Tensor  # [W, L] int64
    targets: torch.Tensor  # [W, L] int64
    position: torch.Tensor  # [W, L] int64

    def batches(self, windows_per_batch: int):
        for start in range(0, len(self.input_ids), windows_per_batch):
            stop = start + windows_per_batch
            yield self.input_ids[start:stop], self.targets[start:stop], self.position[start:stop]


def eval_batches(eval_tokens: pa.Table, bos_token_id: int) -> EvalBatches:
    if eval_tokens.num_rows == 0:
        raise EvalSetError("the evaluation set is empty")
    window_ids = eval_tokens.column("window_id").to_numpy()
    context_len = eval_tokens.column("context_len").to_numpy()
    token_ids = eval_tokens.column("token_id").to_numpy()
    positions = eval_tokens.column("position").to_numpy()
    _, window_index = np.unique(window_ids, return_inverse=True)
    n_windows, length = window_index.max() + 1, context_len.max() + 1

    targets = np.full((n_windows, length), bos_token_id, dtype=np.int64)
    position = np.full((n_windows, length), -1, dtype=np.int64)
    targets[window_index, context_len] = token_ids
    position[window_index, context_len] = positions
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
