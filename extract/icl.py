"""The in-context-learning score of Fehlauer et al.: how much a long context helps a model.

A model that uses its context predicts a late token better from 400 tokens before it than from
50. The score of a checkpoint is the expected surprisal of the token at index `target_position`
(500) given the `short_context` tokens before it, minus given the `long_context` tokens before
it, over sequences cut from the held-out documents. Both contexts are fed bare (no BOS), so the
only difference between the two passes is how much of the same text the model sees.

The published code only ran on CUDA; here everything is ordinary torch on whatever device the
models sit on, and the log-softmax is taken in fp32 whatever precision the models run in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import PreTrainedTokenizerBase

from extract.config import IclConfig
from extract.corpus import Document
from extract.distributions import log_probs
from extract.evalset import EvalSetError

ICL_SEQUENCES_SCHEMA = pa.schema(
    [("sequence_id", pa.int32()), ("doc_id", pa.string()), ("token_ids", pa.list_(pa.int32()))]
)
ICL_SCORES_SCHEMA = pa.schema(
    [
        ("seed", pa.int32()),
        ("sequence_id", pa.int32()),
        ("short_context", pa.int32()),
        ("long_context", pa.int32()),
        ("target_position", pa.int32()),
        ("surprisal_short", pa.float32()),
        ("surprisal_long", pa.float32()),
    ]
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


def last_token_surprisal(
    last_logits: Callable[[torch.Tensor], torch.Tensor], contexts: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """-log p(target | context) in nats, from the fp32 log-softmax of the last position's logits."""
    return -log_probs(last_logits(contexts)).gather(-1, targets[:, None]).squeeze(-1)


def model_last_logits(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The logits at the last position of each context, from a whole Hugging Face model."""
    return lambda contexts: model(input_ids=contexts).logits[:, -1]


def seed_surprisals(
    last_logits: Callable[[torch.Tensor], torch.Tensor], sequences: pa.Table, config: IclConfig, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """One model's surprisals of every sequence's target: (given the short, given the long context)."""
    target = config.target_position
    ids = sequence_matrix(sequences, target)
    short, long = [], []
    with torch.inference_mode():
        for start in range(0, len(ids), config.batch_sequences):
            batch = ids[start : start + config.batch_sequences].to(device)
            targets = batch[:, target]
            short.append(last_token_surprisal(last_logits, batch[:, target - config.short_context : target], targets))
            long.append(last_token_surprisal(last_logits, batch[:, target - config.long_context : target], targets))
    return torch.cat(short).cpu().numpy(), torch.cat(long).cpu().numpy()


def icl_scores_table(
    sequences: pa.Table, config: IclConfig, per_seed: dict[int, tuple[np.ndarray, np.ndarray]]
) -> pa.Table:
    """The icl_scores rows of a partition from each seed's (short, long) surprisals."""
    sequence_ids = sequences.column("sequence_id").to_numpy().astype(np.int32)
    n = len(sequence_ids)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in ICL_SCORES_SCHEMA.names}
    for seed, (short, long) in per_seed.items():
        columns["seed"].append(np.full(n, seed, dtype=np.int32))
        columns["sequence_id"].append(sequence_ids)
        columns["short_context"].append(np.full(n, config.short_context, dtype=np.int32))
        columns["long_context"].append(np.full(n, config.long_context, dtype=np.int32))
        columns["target_position"].append(np.full(n, config.target_position, dtype=np.int32))
        columns["surprisal_short"].append(short.astype(np.float32))
        columns["surprisal_long"].append(long.astype(np.float32))
    table = pa.table({name: np.concatenate(parts) for name, parts in columns.items()}, schema=ICL_SCORES_SCHEMA)
    return table.sort_by([("seed", "ascending"), ("sequence_id", "ascending")])


def icl_surprisals(
    models: dict[int, torch.nn.Module], sequences: pa.Table, config: IclConfig, device: torch.device
) -> pa.Table:
    """Per seed and sequence: the target's surprisal given the short and the long context."""
    per_seed = {
        seed: seed_surprisals(model_last_logits(model), sequences, config, device) for seed, model in models.items()
    }
    return icl_scores_table(sequences, config, per_seed)
