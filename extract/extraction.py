"""One extraction partition: every seed of a (suite, size, step) on the evaluation tokens.

Each seed's weights are read once and kept while the evaluation batches stream through: for
each batch, every seed runs its forward pass, the seeds' fp32 logits are stacked on
the device, and the pairwise KLs and per-token statistics are computed there. Only scalars and
the top-k leave the device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from extract.config import IclConfig
from extract.distributions import log_probs, pairwise_kl, token_statistics, unigram_log_probs
from extract.evalset import EvalBatches, EvalSetError
from extract.icl import icl_surprisals
from extract.suites import Checkpoint, Suite

TOKEN_STATS_SCHEMA = pa.schema(
    [
        ("seed", pa.int32()),
        ("position", pa.int32()),
        ("surprisal", pa.float32()),
        ("entropy", pa.float32()),
        ("kl_uniform", pa.float32()),
        ("kl_unigram", pa.float32()),
        ("topk_ids", pa.list_(pa.int32())),
        ("topk_logprobs", pa.list_(pa.float32())),
        ("tail_mass", pa.float32()),
    ]
)
PAIR_KL_SCHEMA = pa.schema(
    [("seed_a", pa.int32()), ("seed_b", pa.int32()), ("position", pa.int32()), ("kl", pa.float32())]
)


class ExtractionError(RuntimeError):
    """The checkpoint's models cannot be compared; the message names the seed and the fault."""


@dataclass
class Extraction:
    token_stats: pa.Table
    pair_kl: pa.Table
    icl_scores: pa.Table
    n_params: int
    checkpoints: list[dict]  # seed, source, weights digest
    timings_s: dict[str, float]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_models(models: dict[int, torch.nn.Module], checkpoints: dict[int, Checkpoint], vocab: int) -> int:
    sizes = {seed: model.get_output_embeddings().weight.shape[0] for seed, model in models.items()}
    if len(set(sizes.values())) != 1:
        raise ExtractionError(
            f"seeds have different vocabulary sizes, so their distributions cannot be compared: {sizes}"
        )
    model_vocab = next(iter(sizes.values()))
    if model_vocab < vocab:
        seed = next(iter(checkpoints))
        raise ExtractionError(
            f"{checkpoints[seed].source}: the model's vocabulary ({model_vocab}) is smaller than "
            f"its tokenizer's ({vocab})"
        )
    return model_vocab


def extract_partition(
    suite: Suite,
    size: str,
    step: int,
    batches: EvalBatches,
    unigram_counts: pa.Table,
    icl_sequences: pa.Table,
    tokenizer_vocab: int,
    top_k: int,
    windows_per_batch: int,
    icl: IclConfig,
    device: torch.device | None = None,
) -> Extraction:
    device = device or default_device()
    seeds = suite.seeds(size)
    if len(seeds) < 2:
        raise ExtractionError(f"{suite.name} size {size} has {len(seeds)} seed(s); comparing seeds needs two")
    if int(batches.targets.max()) >= tokenizer_vocab:
        raise EvalSetError("evaluation tokens hold ids outside the tokenizer's vocabulary: rebuild eval_tokens")

    timings = {"load": 0.0, "forward": 0.0, "statistics": 0.0, "icl": 0.0}
    started = time.perf_counter()
    checkpoints = {seed: suite.checkpoint(size, seed, step) for seed in seeds}
    models = {seed: suite.load_model(checkpoint, device) for seed, checkpoint in checkpoints.items()}
    vocab = _check_models(models, checkpoints, tokenizer_vocab)
    provenance = [
        {"seed": seed, "source": c.source, "weights": suite.weights_digest(c, models[seed])}
        for seed, c in checkpoints.items()
    ]
    n_params = sum(p.numel() for p in next(iter(models.values())).parameters())
    counts = torch.zeros(vocab, dtype=torch.float64)
    counts[torch.from_numpy(unigram_counts.column("token_id").to_numpy().astype(np.int64))] = torch.from_numpy(
        unigram_counts.column("count").to_numpy().astype(np.float64)
    )
    unigram_logp = unigram_log_probs(counts).to(device)
    timings["load"] = time.perf_counter() - started

    stats_parts: list[dict[str, np.ndarray]] = []
    pair_parts: list[tuple[np.ndarray, np.ndarray]] = []
    seed_ids = torch.tensor(seeds)
    with torch.inference_mode():
        for input_ids, targets, position in batches.batches(windows_per_batch):
            keep = position.reshape(-1) >= 0
            tick = time.perf_counter()
            per_seed = []
            for seed, model in models.items():
                logits = model(input_ids=input_ids.to(device)).logits.float()
                flat = logits.reshape(-1, logits.shape[-1])[keep.to(device)]
                if not torch.isfinite(flat).all():
                    raise ExtractionError(f"{checkpoints[seed].source}: the model gives NaN or infinite logits")
                per_seed.append(flat)
            stacked = torch.stack(per_seed)  # [S, N, V] fp32 logits
            if device.type == "cuda":
                torch.cuda.synchronize()
            timings["forward"] += time.perf_counter() - tick

            tick = time.perf_counter()
            flat_targets = targets.reshape(-1)[keep].to(device)
            flat_position = position.reshape(-1)[keep].numpy()
            for index, seed in enumerate(seeds):
                stats = token_statistics(log_probs(stacked[index]), flat_targets, unigram_logp, top_k)
                stats_parts.append(
                    {
                        "seed": np.full(len(flat_position), seed, dtype=np.int32),
                        "position": flat_position.astype(np.int32),
                        **{
                            name: getattr(stats, name).cpu().numpy()
                            for name in ("surprisal", "entropy", "kl_uniform", "kl_unigram", "tail_mass")
                        },
                        "topk_ids": stats.topk_ids.to(torch.int32).cpu().numpy(),
                        "topk_logprobs": stats.topk_logprobs.cpu().numpy(),
                    }
                )
            kl = pairwise_kl(stacked).cpu().numpy()  # [S, S, N]
            pair_parts.append((kl, flat_position))
            timings["statistics"] += time.perf_counter() - tick

    # The ICL score reuses the models already on the device.
    tick = time.perf_counter()
    icl_scores = icl_surprisals(models, icl_sequences, icl, device)
    timings["icl"] = time.perf_counter() - tick

    return Extraction(
        token_stats=_token_stats_table(stats_parts, top_k),
        pair_kl=_pair_kl_table(pair_parts, seed_ids.numpy()),
        icl_scores=icl_scores,
        n_params=n_params,
        checkpoints=provenance,
        timings_s=timings,
    )


def _fixed_lists(values: np.ndarray, value_type: pa.DataType) -> pa.Array:
    n, k = values.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), type=value_type))


def _token_stats_table(parts: list[dict[str, np.ndarray]], top_k: int) -> pa.Table:
    merged = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    columns = {}
    for field in TOKEN_STATS_SCHEMA:
        if field.name == "topk_ids":
            columns[field.name] = _fixed_lists(merged[field.name], pa.int32())
        elif field.name == "topk_logprobs":
            columns[field.name] = _fixed_lists(merged[field.name], pa.float32())
        else:
            columns[field.name] = pa.array(merged[field.name], type=field.type)
    table = pa.table(columns, schema=TOKEN_STATS_SCHEMA)
    return table.sort_by([("seed", "ascending"), ("position", "ascending")])


def _pair_kl_table(parts: list[tuple[np.ndarray, np.ndarray]], seeds: np.ndarray) -> pa.Table:
    seed_a, seed_b, position, kl = [], [], [], []
    for matrix, flat_position in parts:
        for a in range(len(seeds)):
            for b in range(len(seeds)):
                if a != b:
                    seed_a.append(np.full(len(flat_position), seeds[a], dtype=np.int32))
                    seed_b.append(np.full(len(flat_position), seeds[b], dtype=np.int32))
                    position.append(flat_position.astype(np.int32))
                    kl.append(matrix[a, b])
    table = pa.table(
        {
            "seed_a": np.concatenate(seed_a),
            "seed_b": np.concatenate(seed_b),
            "position": np.concatenate(position),
            "kl": np.concatenate(kl).astype(np.float32),
        },
        schema=PAIR_KL_SCHEMA,
    )
    return table.sort_by([("seed_a", "ascending"), ("seed_b", "ascending"), ("position", "ascending")])
