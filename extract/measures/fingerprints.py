"""Activation fingerprints (McEntire 2026): what a checkpoint's last layer makes of fixed probes.

The probes are the suite's `fingerprint_probes` (extract/inputs/fingerprint_probes.py). A
checkpoint's fingerprint is, per probe, the body's final hidden states (after the final layer
norm) mean-pooled over the probe's real tokens: padding never enters the mean. Two checkpoints of
one size are compared by the cosine similarity of their fingerprints concatenated over probes
(the warehouse does that, dbt_project/models/fingerprints).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import torch

from extract.inputs.fingerprint_probes import (
    FINGERPRINT_PROBES,
    ProbeBatch,
    probe_batch,
    probe_set,
    probes_table,
    table_hash,
)
from extract.lake.tables import PARTITION, LakeTable
from extract.measures.base import Measure, NonFiniteOutputs, SeedModel, SuiteContext

FINGERPRINTS_SCHEMA = pa.schema(
    [
        ("seed", pa.int32()),
        ("probe_id", pa.int32()),
        ("n_tokens", pa.int32()),
        ("fingerprint", pa.list_(pa.float32())),
    ]
)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden [B, T, H] over the positions where mask [B, T] is True, in fp32: [B, H].

    Padded positions are selected out, not multiplied by zero, so whatever a model leaves there
    (even NaN) cannot reach the mean.
    """
    kept = torch.where(mask[..., None], hidden.float(), torch.zeros((), dtype=torch.float32, device=hidden.device))
    return kept.sum(dim=1) / mask.sum(dim=1, keepdim=True).to(torch.float32)


def fingerprints(
    body: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch: ProbeBatch,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """[P, H] fp32 fingerprints: body(input_ids, attention_mask) -> last hidden states [B, T, H]."""
    parts = []
    with torch.inference_mode():
        for input_ids, mask in batch.batches(batch_size):
            mask = mask.to(device)
            hidden = body(input_ids.to(device), mask.long())
            parts.append(masked_mean(hidden, mask).cpu())
    return torch.cat(parts).numpy()


def fingerprints_table(per_seed: dict[int, np.ndarray], n_tokens: np.ndarray) -> pa.Table:
    """Rows ordered by (seed, probe_id)."""
    seeds = sorted(per_seed)
    n_probes, width = per_seed[seeds[0]].shape
    values = np.concatenate([per_seed[s].astype(np.float32).reshape(-1) for s in seeds])
    offsets = pa.array(np.arange(0, (len(seeds) * n_probes + 1) * width, width, dtype=np.int32))
    return pa.table(
        {
            "seed": np.repeat(np.array(seeds, dtype=np.int32), n_probes),
            "probe_id": np.tile(np.arange(n_probes, dtype=np.int32), len(seeds)),
            "n_tokens": np.tile(n_tokens.astype(np.int32), len(seeds)),
            "fingerprint": pa.ListArray.from_arrays(offsets, pa.array(values, type=pa.float32())),
        },
        schema=FINGERPRINTS_SCHEMA,
    )


FINGERPRINTS = LakeTable(
    "fingerprints",
    FINGERPRINTS_SCHEMA,
    PARTITION,
    "Per seed and probe: final hidden states mean-pooled over the probe's tokens.",
)


class Fingerprints(Measure):
    """Each seed's activation fingerprint on the suite's probes."""

    tables = (FINGERPRINTS,)
    inputs = (FINGERPRINT_PROBES,)
    phase = "fingerprint"

    def __init__(self, probes: pa.Table, batch: ProbeBatch, batch_probes: int):
        self.probes = probes
        self.batch = batch
        self.batch_probes = batch_probes

    @classmethod
    def build_inputs(cls, settings, tokenizer, heldout) -> dict[str, pa.Table]:
        config = settings.fingerprint
        return {FINGERPRINT_PROBES.name: probes_table(probe_set(config, heldout), tokenizer, config.max_tokens)}

    @classmethod
    def for_suite(cls, context: SuiteContext) -> Fingerprints:
        probes = context.read(FINGERPRINT_PROBES)
        return cls(probes, probe_batch(probes, context.tokenizer), context.settings.fingerprint.batch_probes)

    def measure_seed(self, model: SeedModel) -> np.ndarray:
        # A causal body needs no attention mask: the padding after a probe cannot reach the
        # probe's own positions, so the compiled body runs unmasked and the pooling leaves padding
        # out. A masked LM attends both ways and gets the mask.
        fingerprint = fingerprints(
            lambda ids, mask: model.hidden_states(ids, mask if model.masked else None),
            self.batch,
            self.batch_probes,
            model.device,
        )
        if not np.isfinite(fingerprint).all():
            raise NonFiniteOutputs(f"{model.checkpoint.source}: the model gives NaN or infinite fingerprints")
        return fingerprint

    def partition_tables(self, per_seed: dict) -> dict[str, pa.Table]:
        return {FINGERPRINTS.name: fingerprints_table(per_seed, self.batch.mask.sum(dim=1).numpy())}

    def identity(self) -> dict:
        return {"probe_set_hash": table_hash(self.probes)}
