"""BLiMP scores: each seed's log-probability of both sentences of every minimal pair.

Sentences are fed behind the suite's BOS token (extract/inputs/blimp_pairs.py), so every token
is scored, the first included; the two-point distributions and their KLs are the warehouse's.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from extract.inputs.blimp_pairs import (
    BLIMP_PAIRS,
    blimp_pairs_table,
    blimp_sentence_batch,
    blimp_set_hash,
    load_blimp,
    select_pairs,
)
from extract.inputs.loglik_texts import TextBatch
from extract.lake.tables import PARTITION, LakeTable
from extract.measures.base import Measure, NonFiniteOutputs, SeedModel, SuiteContext
from extract.measures.text_loglik import text_logprobs

BLIMP_SCORES_SCHEMA = pa.schema(
    [("seed", pa.int32()), ("pair_index", pa.int32()), ("logprob_good", pa.float64()), ("logprob_bad", pa.float64())]
)


def blimp_scores_table(per_seed: dict[int, np.ndarray]) -> pa.Table:
    """log p(good) and log p(bad) per (seed, pair_index) from each seed's interleaved sentence scores."""
    seeds = sorted(per_seed)
    scores = [np.asarray(per_seed[seed], dtype=np.float64) for seed in seeds]
    lengths = {len(s) for s in scores}
    if len(lengths) > 1 or any(n % 2 for n in lengths):
        raise ValueError(f"BLiMP scores must be [2 x pairs] and equal in length for every seed, got {sorted(lengths)}")
    n_pairs = lengths.pop() // 2 if lengths else 0
    return pa.table(
        {
            "seed": np.repeat(np.array(seeds, dtype=np.int32), n_pairs),
            "pair_index": np.tile(np.arange(n_pairs, dtype=np.int32), len(seeds)),
            "logprob_good": np.concatenate([s[0::2] for s in scores]) if scores else np.zeros(0),
            "logprob_bad": np.concatenate([s[1::2] for s in scores]) if scores else np.zeros(0),
        },
        schema=BLIMP_SCORES_SCHEMA,
    )


BLIMP_SCORES = LakeTable(
    "blimp_scores",
    BLIMP_SCORES_SCHEMA,
    PARTITION,
    "Per seed and BLiMP pair: log-probability of the good and of the bad sentence.",
    objectives=("causal",),  # a masked LM gives no left-to-right probability of a sentence
)


class BlimpScores(Measure):
    """Each seed's log-probability of both sentences of every BLiMP minimal pair."""

    tables = (BLIMP_SCORES,)
    inputs = (BLIMP_PAIRS,)
    phase = "blimp"

    def __init__(self, pairs: pa.Table, batch: TextBatch, batch_sentences: int, append_eos: bool):
        self.pairs = pairs
        self.batch = batch
        self.batch_sentences = batch_sentences
        self.append_eos = append_eos

    @classmethod
    def build_inputs(cls, settings, tokenizer, heldout) -> dict[str, pa.Table]:
        pairs = select_pairs(load_blimp(settings.blimp), settings.blimp)
        return {BLIMP_PAIRS.name: blimp_pairs_table(pairs, tokenizer)}

    @classmethod
    def for_suite(cls, context: SuiteContext) -> BlimpScores:
        config, tokenizer, bos = context.settings.blimp, context.tokenizer, context.bos
        # The end-of-text token scored after each sentence when blimp.append_eos is set.
        eos = (tokenizer.eos_token_id if tokenizer.eos_token_id is not None else bos) if config.append_eos else None
        pairs = context.read(BLIMP_PAIRS)
        return cls(pairs, blimp_sentence_batch(pairs, tokenizer, bos, eos), config.batch_sentences, config.append_eos)

    def measure_seed(self, model: SeedModel) -> np.ndarray:
        scores = text_logprobs(model, self.batch, self.batch_sentences, model.device)
        if not np.isfinite(scores).all():
            raise NonFiniteOutputs(f"{model.checkpoint.source}: the model gives NaN or infinite BLiMP scores")
        return scores

    def partition_tables(self, per_seed: dict) -> dict[str, pa.Table]:
        return {BLIMP_SCORES.name: blimp_scores_table(per_seed)}

    def identity(self) -> dict:
        return {"blimp_set_hash": blimp_set_hash(self.pairs, self.append_eos)}
