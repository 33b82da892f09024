"""The log-likelihood vectors' texts: held-out Brown paragraphs, each cut to its first max_tokens tokens.

Paragraphs shorter than `min_tokens` (headings) are skipped, until `n_texts` are collected. A text
is stored as exactly the characters its tokens cover, with its UTF-8 byte count, so that KL can
be put per byte. `TextBatch` feeds texts (and BLiMP's sentences) behind the BOS token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import torch
from transformers import PreTrainedTokenizerBase

from extract.config import LoglikConfig
from extract.inputs.brown_corpus import Document
from extract.inputs.eval_tokens import EvalSetError
from extract.lake.tables import SUITE, LakeTable

LOGLIK_TEXTS_SCHEMA = pa.schema(
    [
        ("text_id", pa.int32()),
        ("doc_id", pa.string()),
        ("text", pa.string()),
        ("n_bytes", pa.int32()),
        ("n_tokens", pa.int32()),
    ]
)


def loglik_texts_table(
    documents: Sequence[Document], tokenizer: PreTrainedTokenizerBase, config: LoglikConfig
) -> pa.Table:
    rows: dict[str, list] = {name: [] for name in LOGLIK_TEXTS_SCHEMA.names}
    for document in documents:
        for paragraph in document.text.split("\n\n"):
            if len(rows["text"]) == config.n_texts:
                break
            encoding = tokenizer(paragraph, add_special_tokens=False, return_offsets_mapping=True)
            if len(encoding["input_ids"]) < config.min_tokens:
                continue
            end = encoding["offset_mapping"][: config.max_tokens][-1][1]
            text = paragraph[:end]
            n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            if text in rows["text"]:
                continue
            rows["text_id"].append(len(rows["text"]))
            rows["doc_id"].append(document.doc_id)
            rows["text"].append(text)
            rows["n_bytes"].append(len(text.encode("utf-8")))
            rows["n_tokens"].append(n_tokens)
    if len(rows["text"]) < config.n_texts:
        raise EvalSetError(
            f"loglik.n_texts is {config.n_texts} but the held-out documents give only {len(rows['text'])} "
            f"paragraphs of at least loglik.min_tokens = {config.min_tokens} tokens: lower loglik.n_texts"
        )
    return pa.table(rows, schema=LOGLIK_TEXTS_SCHEMA)


@dataclass(frozen=True)
class TextBatch:
    """The texts as model inputs: BOS then the text's tokens (but the last, unless an end-of-text
    token follows them), right-padded; every text token (and that end-of-text token) is a target."""

    input_ids: torch.Tensor  # [N, T] int64
    targets: torch.Tensor  # [N, T] int64, the text's tokens
    mask: torch.Tensor  # [N, T] bool, True on the text's tokens

    def batches(self, size: int, pad_multiple: int = 8):
        """(rows, input_ids, targets, mask) per batch of `size` texts of similar length, each cut
        to its longest text rounded up to `pad_multiple` tokens. Texts of very different lengths
        (BLiMP's sentences run from 3 to 46 tokens) padded to the longest of all would spend most
        of the forward pass on padding; the rounding keeps the number of distinct shapes, each a
        compilation of the body, small. Cutting padding off the end changes no real position of
        a causal model."""
        lengths = self.mask.sum(dim=1)
        order = torch.argsort(lengths, stable=True)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            width = min(-(-int(lengths[rows].max()) // pad_multiple) * pad_multiple, self.input_ids.shape[1])
            yield rows, self.input_ids[rows, :width], self.targets[rows, :width], self.mask[rows, :width]


def token_batch(encoded: Sequence[Sequence[int]], bos_token_id: int, eos_token_id: int | None = None) -> TextBatch:
    """Token sequences fed behind BOS, each scored in full; with `eos_token_id`, that token is
    appended to every sequence and scored too. Padding sits after each sequence, where a causal
    model's real positions cannot see it."""
    if eos_token_id is not None:
        encoded = [[*ids, eos_token_id] for ids in encoded]
    length = max(len(ids) for ids in encoded)
    targets = torch.full((len(encoded), length), bos_token_id, dtype=torch.int64)
    mask = torch.zeros((len(encoded), length), dtype=torch.bool)
    for row, ids in enumerate(encoded):
        targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        mask[row, : len(ids)] = True
    input_ids = torch.cat([torch.full((len(encoded), 1), bos_token_id), targets[:, :-1]], dim=1)
    return TextBatch(input_ids, targets, mask)


def text_batch(
    texts: pa.Table, tokenizer: PreTrainedTokenizerBase, bos_token_id: int, eos_token_id: int | None = None
) -> TextBatch:
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts.column("text").to_pylist()]
    if [len(ids) for ids in encoded] != texts.column("n_tokens").to_pylist():
        raise EvalSetError("loglik_texts no longer encode to their stored lengths: rebuild the eval set")
    return token_batch(encoded, bos_token_id, eos_token_id)


LOGLIK_TEXTS = LakeTable(
    "loglik_texts",
    LOGLIK_TEXTS_SCHEMA,
    SUITE,
    "Per suite, the log-likelihood vectors' texts with byte counts.",
    objectives=("causal",),
)
