"""The ICL score's inputs: spans of target_position + 1 tokens cut from the held-out documents.

Each sequence is one document's tokens, fed bare (no BOS); the ICL measure
(extract/measures/icl_scores.py) scores its last token given a short and a long context.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import PreTrainedTokenizerBase

from extract.inputs.brown_corpus import Document
from extract.inputs.eval_tokens import EvalSetError
from extract.lake.tables import SUITE, LakeTable

ICL_SEQUENCES_SCHEMA = pa.schema(
    [("sequence_id", pa.int32()), ("doc_id", pa.string()), ("token_ids", pa.list_(pa.int32()))]
)


def document_spans(ids: Sequence[int], length: int) -> list[list[int]]:
    """Non-overlapping spans of `length` ids from the start of a document; the remainder is dropped."""
    return [list(ids[start : start + length]) for start in range(0, len(ids) - length + 1, length)]


def icl_sequences_table(
    documents: Sequence[Document],
    tokenizer: PreTrainedTokenizerBase,
    target_position: int,
    max_sequences: int,
) -> pa.Table:
    """Spans of target_position + 1 tokens from the held-out documents, in order, up to max_sequences."""
    length = target_position + 1
    doc_ids: list[str] = []
    token_ids: list[list[int]] = []
    for document in documents:
        ids = tokenizer(document.text, add_special_tokens=False)["input_ids"]
        for span in document_spans(ids, length):
            if len(token_ids) == max_sequences:
                break
            doc_ids.append(document.doc_id)
            token_ids.append(span)
    if not token_ids:
        raise EvalSetError(
            f"no held-out document has icl.target_position + 1 = {length} tokens: lower "
            f"icl.target_position (and the contexts) or hold out longer documents"
        )
    return pa.table(
        {"sequence_id": np.arange(len(token_ids), dtype=np.int32), "doc_id": doc_ids, "token_ids": token_ids},
        schema=ICL_SEQUENCES_SCHEMA,
    )


def sequence_matrix(sequences: pa.Table, target_position: int) -> torch.Tensor:
    """The sequences' ids as one [N, target_position + 1] int64 tensor (they all have that length)."""
    lengths = set(pc.list_value_length(sequences.column("token_ids")).to_pylist())
    if lengths != {target_position + 1}:
        raise EvalSetError(
            f"icl_sequences hold sequences of {sorted(lengths)} tokens but icl.target_position "
            f"{target_position} needs {target_position + 1}: rebuild the eval set"
        )
    flat = pc.list_flatten(sequences.column("token_ids")).to_numpy()
    return torch.from_numpy(flat.astype(np.int64).reshape(sequences.num_rows, target_position + 1))


ICL_SEQUENCES = LakeTable(
    "icl_sequences",
    ICL_SEQUENCES_SCHEMA,
    SUITE,
    "Per suite, held-out token sequences for the ICL score.",
    objectives=("causal",),
)
