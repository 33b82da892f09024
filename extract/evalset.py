"""The evaluation tokens every checkpoint of a suite is run on, and the unigram reference.

The evaluation set is cut from held-out Brown documents, which no mini-suite run trains on:
each document is tokenized with the suite's tokenizer and split into windows of at most
`window` tokens; windows are taken in document order until `n_tokens` targets are collected.
Each window is fed to the model behind a BOS token, so every token of it is predicted and its
context length (the number of real tokens before it in the window) runs from 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch
from transformers import PreTrainedTokenizerBase

from extract.corpus import Document

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


class EvalSetError(ValueError):
    """The evaluation set cannot be built or does not fit the models; the message says why."""


def eval_documents_table(eval_set: str, documents: Sequence[Document]) -> pa.Table:
    return pa.table(
        {
            "eval_set": [eval_set] * len(documents),
            "doc_id": [d.doc_id for d in documents],
            "category": [d.category for d in documents],
            "text": [d.text for d in documents],
        }
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


def unigram_counts(token_stream: np.ndarray) -> pa.Table:
    """Token counts of a reference corpus, the basis of the unigram distribution."""
    token_ids, counts = np.unique(token_stream, return_counts=True)
    return pa.table({"token_id": token_ids.astype(np.int32), "count": counts.astype(np.int64)})
