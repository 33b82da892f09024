"""The in-context-learning score of Fehlauer et al.: how much a long context helps a model.

A model that uses its context predicts a late token better from 400 tokens before it than from
50. The score of a checkpoint is the expected surprisal of the token at 0-based index
`target_position` (499: the 500th token, as the paper's footnote 2 words it) given the
`short_context` tokens before it, minus given the `long_context` tokens before it, over sequences
cut from the held-out documents. Both contexts are fed bare (no BOS), so the only difference
between the two passes is how much of the same text the model sees.

The published code only ran on CUDA; here everything is ordinary torch on whatever device the
models sit on, and the log-softmax is taken in fp32 whatever precision the models run in.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from extract.config import IclConfig
from extract.inputs.icl_sequences import ICL_SEQUENCES, icl_sequences_table, sequence_matrix
from extract.lake.tables import PARTITION, LakeTable
from extract.measures.base import Measure, NonFiniteOutputs, SeedModel, SuiteContext
from extract.measures.text_loglik import HuggingFaceScorer, TokenScorer

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


def seed_surprisals(
    model: TokenScorer, sequences: pa.Table, config: IclConfig, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """One model's surprisals of every sequence's target: (given the short, given the long context).

    Only the last position of each context is unembedded: the one prediction the score reads."""
    target = config.target_position
    ids = sequence_matrix(sequences, target)
    short, long = [], []
    with torch.inference_mode():
        for start in range(0, len(ids), config.batch_sequences):
            batch = ids[start : start + config.batch_sequences].to(device)
            targets = batch[:, target]
            for context, out in ((config.short_context, short), (config.long_context, long)):
                last = model.hidden_states(batch[:, target - context : target])[:, -1]
                out.append(-model.target_logprobs(last, targets))
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
        seed: seed_surprisals(HuggingFaceScorer(model), sequences, config, device) for seed, model in models.items()
    }
    return icl_scores_table(sequences, config, per_seed)


ICL_SCORES = LakeTable(
    "icl_scores",
    ICL_SCORES_SCHEMA,
    PARTITION,
    "Per seed and sequence: surprisal of the target token given a short and a long context.",
    objectives=("causal",),  # a masked LM gives no left-to-right probability of the next token
)


class IclScores(Measure):
    """Each seed's surprisal of every sequence's target token given the short and the long context."""

    tables = (ICL_SCORES,)
    inputs = (ICL_SEQUENCES,)
    phase = "icl"

    def __init__(self, sequences: pa.Table, config: IclConfig):
        self.sequences = sequences
        self.config = config

    @classmethod
    def build_inputs(cls, settings, tokenizer, heldout) -> dict[str, pa.Table]:
        icl = settings.icl
        return {ICL_SEQUENCES.name: icl_sequences_table(heldout, tokenizer, icl.target_position, icl.max_sequences)}

    @classmethod
    def for_suite(cls, context: SuiteContext) -> IclScores:
        return cls(context.read(ICL_SEQUENCES), context.settings.icl)

    def measure_seed(self, model: SeedModel) -> tuple[np.ndarray, np.ndarray]:
        surprisals = seed_surprisals(model, self.sequences, self.config, model.device)
        if not all(np.isfinite(values).all() for values in surprisals):
            raise NonFiniteOutputs(f"{model.checkpoint.source}: the model gives NaN or infinite ICL surprisals")
        return surprisals

    def partition_tables(self, per_seed: dict) -> dict[str, pa.Table]:
        return {ICL_SCORES.name: icl_scores_table(self.sequences, self.config, per_seed)}
