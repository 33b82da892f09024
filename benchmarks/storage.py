"""Bytes per record in the lake, and how well the top-k copy reproduces the exact KL.

    python -m benchmarks.storage [--lake PATH] [--vocab V] [--no-realistic-vocab]

Prints, for the lake (default: the configured warehouse's, `$SEEDCONV_WAREHOUSE/lake`):

- token_stats: bytes per (token, seed) record on disk, every column counted (file bytes over
  rows, all complete partitions), with a per-column breakdown from the Parquet metadata, beside
  the target (at most 300 B per record at k = 32);
- pair_kl: bytes per (token, pair) record;
- both again as the current writer (extract/lake.py) would write the same rows, and what each of
  the writer's options is worth on the last partition;
- the error of KL estimated from the top-k records (analysis/topk_kl.py) against the exact
  pair_kl, by exact-KL range and by tail mass, and of the convergence re-derived from it
  (per context, and E[conv] per (suite, size, step)).

The mini suite's vocabulary (2,048) makes top-k ids cheap to store, so the same measurement is
also made on a token_stats table at a realistic vocabulary (50,304, Pythia's), computed by
extract.measures.token_distributions.token_statistics from a small random GPT-NeoX and written
by extract.lake.partition_store in a temporary folder. docs/storage.md reports the numbers.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.topk_kl import pair_kl_from_topk, vocab_from_token_stats
from extract.lake.partition_store import MANIFEST, read_manifest
from extract.lake.tables import CHECKPOINTS

TARGET_BYTES = 300  # per (token, seed) record of token_stats, every column counted
TARGET_TOP_K = 32
KL_EDGES = (0.0, 1e-3, 1e-2, 0.1, 1.0, math.inf)
TAIL_EDGES = (0.0, 0.01, 0.1, 0.5, 0.9, 1.0)
# Above this tail mass (near-uniform distributions) the top-k copy misses most of the KL.
USABLE_TAIL = 0.9
REALISTIC_VOCAB = 50_304
FOOTER = "(footer, headers)"


@dataclass
class TableStorage:
    """Bytes of one lake table over every file that holds it."""

    table: str
    files: int = 0
    rows: int = 0
    file_bytes: int = 0
    column_bytes: dict[str, int] = field(default_factory=dict)  # compressed, per top-level column

    def add_file(self, path: Path) -> None:
        metadata = pq.ParquetFile(path).metadata
        self.files += 1
        self.rows += metadata.num_rows
        self.file_bytes += path.stat().st_size
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for index in range(row_group.num_columns):
                chunk = row_group.column(index)
                name = chunk.path_in_schema.split(".")[0]
                self.column_bytes[name] = self.column_bytes.get(name, 0) + chunk.total_compressed_size

    @property
    def bytes_per_row(self) -> float:
        return self.file_bytes / self.rows if self.rows else math.nan

    def per_row(self) -> dict[str, float]:
        """Compressed bytes per row of each column, plus what the file holds beside the columns."""
        rows = max(self.rows, 1)
        out = {name: size / rows for name, size in self.column_bytes.items()}
        out[FOOTER] = (self.file_bytes - sum(self.column_bytes.values())) / rows
        return out


def complete_partitions(lake: Path) -> list[Path]:
    """Checkpoint partitions with a manifest, ordered by suite, size and step."""

    def key(path: Path) -> tuple:
        parts = {p.split("=")[0]: p.split("=", 1)[1] for p in path.relative_to(lake / CHECKPOINTS).parts}
        return parts["suite"], parts["size"], int(parts["step"])

    found = [m.parent for m in (lake / CHECKPOINTS).glob(f"suite=*/size=*/step=*/{MANIFEST}")]
    return sorted(found, key=key)


def lake_storage(lake: Path, tables: tuple[str, ...] = ("token_stats", "pair_kl")) -> dict[str, TableStorage]:
    storage = {name: TableStorage(name) for name in tables}
    for partition in complete_partitions(lake):
        for name in tables:
            path = partition / f"{name}.parquet"
            if path.exists():
                storage[name].add_file(path)
    return storage


def rewritten_storage(lake: Path, tables: tuple[str, ...] = ("token_stats", "pair_kl")) -> dict[str, TableStorage]:
    """The same rows re-encoded by the current writer (extract.lake), for lakes written before it changed."""
    from extract.lake.partition_store import write_table_atomically

    storage = {name: TableStorage(name) for name in tables}
    with tempfile.TemporaryDirectory() as folder:
        for partition in complete_partitions(lake):
            for name in tables:
                path = partition / f"{name}.parquet"
                if path.exists():
                    copy = Path(folder) / f"{name}.parquet"
                    write_table_atomically(pq.read_table(path), copy)
                    storage[name].add_file(copy)
                    copy.unlink()
    return storage


def lake_top_k(lake: Path) -> list[int]:
    return sorted({read_manifest(p)["top_k"] for p in complete_partitions(lake)})


def format_storage(storage: TableStorage, record: str, top_k: list[int] | None = None) -> list[str]:
    lines = [
        f"{storage.table}: {storage.rows:,} ({record}) records in {storage.files} files, "
        f"{storage.file_bytes:,} bytes: {storage.bytes_per_row:.1f} B per record"
    ]
    if top_k is not None:
        lines.append("  " + target_verdict(storage.bytes_per_row, top_k))
    for name, value in storage.per_row().items():
        lines.append(f"    {name:<20} {value:8.2f} B")
    return lines


def target_verdict(bytes_per_row: float, top_k: list[int]) -> str:
    if top_k != [TARGET_TOP_K]:
        return f"top_k {top_k}: the target (<= {TARGET_BYTES} B at k = {TARGET_TOP_K}) does not apply"
    verdict = "met" if bytes_per_row <= TARGET_BYTES else "MISSED"
    return f"top_k {TARGET_TOP_K}, target <= {TARGET_BYTES} B per record: {verdict} ({bytes_per_row:.1f} B)"


# --- the top-k KL error ------------------------------------------------------------------------


@dataclass
class KlComparison:
    """Exact and top-k-estimated KL for every (partition, pair, position), and what follows."""

    exact: np.ndarray  # pair KL
    estimate: np.ndarray
    tail: np.ndarray  # the larger tail mass of the pair's two records
    context_exact: np.ndarray  # mean KL over pairs per (partition, position) = -conv
    context_estimate: np.ndarray
    context_tail: np.ndarray  # the largest tail mass over the context's seeds
    # suite, size, step, E[conv] exact, E[conv] from the top-k copy, median tail mass of the records
    expected: list[tuple[str, str, int, float, float, float]]
    vocab: list[int]


def compare_kl(lake: Path, vocab: int | None = None) -> KlComparison:
    """Joins every complete partition's token_stats (all pairs of seeds) with its exact pair_kl."""
    parts: dict[str, list[np.ndarray]] = {
        name: [] for name in ("exact", "estimate", "tail", "context_exact", "context_estimate", "context_tail")
    }
    expected, vocabs = [], set()
    for partition in complete_partitions(lake):
        ts_path, pk_path = partition / "token_stats.parquet", partition / "pair_kl.parquet"
        if not (ts_path.exists() and pk_path.exists()):
            continue
        token_stats = pq.read_table(ts_path)
        v = vocab or vocab_from_token_stats(token_stats)
        vocabs.add(v)
        estimated = pair_kl_from_topk(token_stats, v).rename_columns(["seed_a", "seed_b", "position", "kl_topk"])
        joined = pq.read_table(pk_path).join(estimated, ["seed_a", "seed_b", "position"], join_type="inner")
        tails = token_stats.select(["seed", "position", "tail_mass"])
        joined = joined.join(tails.rename_columns(["seed_a", "position", "tail_a"]), ["seed_a", "position"])
        joined = joined.join(tails.rename_columns(["seed_b", "position", "tail_b"]), ["seed_b", "position"])
        kl = joined.column("kl").to_numpy().astype(np.float64)
        kl_topk = joined.column("kl_topk").to_numpy().astype(np.float64)
        tail = np.maximum(joined.column("tail_a").to_numpy(), joined.column("tail_b").to_numpy())
        _, inverse = np.unique(joined.column("position").to_numpy(), return_inverse=True)
        pairs = np.bincount(inverse)
        context_tail = np.zeros(len(pairs), dtype=tail.dtype)
        np.maximum.at(context_tail, inverse, tail)
        for name, values in (
            ("exact", kl),
            ("estimate", kl_topk),
            ("tail", tail),
            ("context_exact", np.bincount(inverse, kl) / pairs),
            ("context_estimate", np.bincount(inverse, kl_topk) / pairs),
            ("context_tail", context_tail),
        ):
            parts[name].append(values)
        suite, size, step = (p.split("=", 1)[1] for p in partition.relative_to(lake / CHECKPOINTS).parts)
        median_tail = float(np.median(tails.column("tail_mass").to_numpy()))
        expected.append((suite, size, int(step), -kl.mean(), -kl_topk.mean(), median_tail))
    if not expected:
        raise SystemExit(f"{lake}: no complete partition with token_stats and pair_kl")
    return KlComparison(
        **{name: np.concatenate(values) for name, values in parts.items()}, expected=expected, vocab=sorted(vocabs)
    )


def _bins(edges: tuple[float, ...]) -> list[tuple[str, float, float]]:
    """(label, low, high) per bin: [low, high), the last one closed when its upper edge is finite."""

    def number(x: float) -> str:
        return "inf" if math.isinf(x) else f"{x:g}"

    bins = []
    for i in range(len(edges) - 1):
        low, high = edges[i], edges[i + 1]
        last_closed = i == len(edges) - 2 and not math.isinf(high)
        bins.append((f"[{number(low)}, {number(high)}{']' if last_closed else ')'}", low, high))
    return bins


def error_rows(exact: np.ndarray, estimate: np.ndarray, by: np.ndarray, edges: tuple[float, ...]) -> list[dict]:
    """Error statistics of `estimate` against `exact` in the bins of `by` (plus one row for all).

    Relative errors are over rows whose exact value is positive.
    """
    rows = []
    last = edges[-1]
    for label, low, high in _bins(edges) + [("all", -math.inf, math.inf)]:
        inside = (by >= low) & ((by < high) | ((high == last) & (by == high)))
        e, x = exact[inside], estimate[inside]
        relative = (x[e > 0] - e[e > 0]) / e[e > 0]
        row = {"range": label, "count": int(inside.sum()), "share": float(inside.mean()) if len(by) else math.nan}
        if relative.size:
            row |= {
                "median_abs_rel": float(np.median(np.abs(relative))),
                "p90_abs_rel": float(np.quantile(np.abs(relative), 0.9)),
                "median_abs": float(np.median(np.abs(x - e))),
                "bias": float(relative.mean()),
                "median_rel": float(np.median(relative)),
            }
        rows.append(row)
    return rows


def format_error_rows(rows: list[dict], title: str) -> list[str]:
    lines = [
        title,
        f"  {'range':<16}{'count':>11}{'share':>8}{'med |rel|':>11}{'p90 |rel|':>11}"
        f"{'med |abs|':>11}{'bias':>9}{'med rel':>9}",
    ]
    for row in rows:
        if "bias" not in row:
            lines.append(f"  {row['range']:<16}{row['count']:>11,}{row['share']:>8.1%}")
            continue
        lines.append(
            f"  {row['range']:<16}{row['count']:>11,}{row['share']:>8.1%}{row['median_abs_rel']:>11.2%}"
            f"{row['p90_abs_rel']:>11.2%}{row['median_abs']:>11.2e}{row['bias']:>+9.1%}{row['median_rel']:>+9.1%}"
        )
    return lines


def format_comparison(comparison: KlComparison) -> list[str]:
    c = comparison
    usable = c.tail < USABLE_TAIL
    usable_contexts = c.context_tail < USABLE_TAIL
    lines = [
        f"KL from the top-k copy (analysis/topk_kl.py) against the exact pair_kl: {len(c.exact):,} (token, pair) "
        f"records, vocabulary {c.vocab}",
        "  rel = (estimate - exact) / exact; bias = mean rel; med rel = median rel",
    ]
    lines += format_error_rows(error_rows(c.exact, c.estimate, c.exact, KL_EDGES), "By exact KL (nats), all pairs:")
    lines += format_error_rows(
        error_rows(c.exact[usable], c.estimate[usable], c.exact[usable], KL_EDGES),
        f"By exact KL (nats), pairs whose two tail masses are below {USABLE_TAIL}:",
    )
    lines += format_error_rows(
        error_rows(c.exact, c.estimate, c.tail, TAIL_EDGES), "By the larger tail mass of the pair's two records:"
    )
    lines += format_error_rows(
        error_rows(c.context_exact, c.context_estimate, c.context_exact, KL_EDGES),
        "Per-context convergence conv = -mean KL over pairs, by the context's exact mean KL, all contexts:",
    )
    lines += format_error_rows(
        error_rows(
            c.context_exact[usable_contexts],
            c.context_estimate[usable_contexts],
            c.context_exact[usable_contexts],
            KL_EDGES,
        ),
        f"Per-context convergence, contexts whose every tail mass is below {USABLE_TAIL}:",
    )
    lines.append("E[conv] per (suite, size, step): exact, from the top-k copy, relative error, median tail mass")
    relative, usable_partitions = [], []
    for suite, size, step, exact, estimate, median_tail in c.expected:
        rel = (estimate - exact) / exact if exact else math.nan
        relative.append(rel)
        usable_partitions.append(median_tail < USABLE_TAIL)
        lines.append(
            f"  {suite:<8}{size:<6}{step:>8}  {exact:>10.5f}  {estimate:>10.5f}  {rel:>+8.2%}  {median_tail:>6.3f}"
        )
    relative = np.abs(np.array(relative))
    for label, chosen in (
        ("all partitions", np.ones(len(relative), bool)),
        (f"partitions with median tail mass < {USABLE_TAIL}", np.array(usable_partitions)),
    ):
        if not chosen.any():
            continue
        worst = int(np.flatnonzero(chosen)[np.nanargmax(relative[chosen])])
        suite, size, step = c.expected[worst][:3]
        lines.append(
            f"  |relative error| of E[conv], {label} ({chosen.sum()}): median {np.nanmedian(relative[chosen]):.2%}, "
            f"largest {relative[worst]:.2%} ({suite} {size} step {step})"
        )
    return lines


# --- writer options ------------------------------------------------------------------------------


def writer_variants(schema: pa.Schema) -> dict[str, dict]:
    """The current writer's options (extract/lake.py) and what each of its choices is worth."""
    from extract.lake.partition_store import _parquet_options

    current = _parquet_options(schema)
    encodings = current["column_encoding"]
    split = {leaf for leaf, encoding in encodings.items() if encoding == "BYTE_STREAM_SPLIT"}
    delta = {leaf for leaf, encoding in encodings.items() if encoding == "DELTA_BINARY_PACKED"}

    def without(leaves: set[str]) -> dict:
        return current | {
            "use_dictionary": current["use_dictionary"] + sorted(leaves),
            "column_encoding": {leaf: e for leaf, e in encodings.items() if leaf not in leaves},
        }

    return {
        "zstd, default encodings (the writer before)": {"compression": "zstd"},
        "current writer": current,
        "current, floats dictionary-encoded": without(split),
        "current, position dictionary-encoded": without(delta),
        "current, zstd level 3": current | {"compression_level": 3},
        "current, zstd level 9": current | {"compression_level": 9},
        "current, zstd level 12": current | {"compression_level": 12},
    }


def writer_options_report(table: pa.Table) -> list[str]:
    """Bytes per row and write time of `table` under each of writer_variants, checked lossless."""
    lines = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.parquet"
        for label, options in writer_variants(table.schema).items():
            started = time.perf_counter()
            pq.write_table(table, path, **options)
            elapsed = time.perf_counter() - started
            if not pq.read_table(path).equals(table):
                raise AssertionError(f"{label}: the values read back differ")
            lines.append(
                f"    {label:<44} {path.stat().st_size / table.num_rows:8.1f} B   write {elapsed * 1e3:5.0f} ms"
            )
    return lines


# --- a realistic vocabulary --------------------------------------------------------------------

FLAVOURS = {
    # logits = scale * (random model's logits) + zipf * log-prior(rank): see realistic_vocab_lake.
    "random-init": (1.0, 0.0),
    "peaked": (4.0, 1.5),
}


def realistic_vocab_token_stats(
    flavour: str, vocab: int = REALISTIC_VOCAB, n_tokens: int = 4096, seeds: int = 5, top_k: int = TARGET_TOP_K
) -> pa.Table:
    """token_stats rows at a realistic vocabulary, from small random GPT-NeoX models (one per seed).

    Each seed is a GPT-NeoX (hidden 64, 2 layers) at the mini suite's initialisation (logit
    spread as Pythia-70m's at step 0) over `vocab` tokens, fed windows of token ids drawn from a
    Zipf law. "random-init" keeps its logits: near-uniform distributions, the top-k ids spread
    over the whole vocabulary. "peaked" sharpens them and adds a Zipf log-prior over the token
    ids, which gives distributions about as peaked as a trained model's, their top-k on frequent
    tokens. The statistics come from extract.measures.token_distributions.token_statistics, as in extraction.
    """
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from extract.measures.token_distributions import TOKEN_STATS_SCHEMA, log_probs, token_statistics, unigram_log_probs
    from extract.sources.mini_trainer import init_std

    scale, zipf_weight = FLAVOURS[flavour]
    window = 128
    generator = torch.Generator().manual_seed(0)
    log_prior = -torch.log1p(torch.randperm(vocab, generator=generator).double())  # Zipf over a random id order
    inputs = torch.multinomial(torch.softmax(log_prior, -1), n_tokens + 1, replacement=True, generator=generator)
    windows = inputs[:n_tokens].reshape(-1, window) if n_tokens % window == 0 else None
    if windows is None:
        raise ValueError(f"n_tokens must be a multiple of {window}")
    targets = inputs[1 : n_tokens + 1]
    unigram = unigram_log_probs(torch.bincount(inputs, minlength=vocab))
    columns: dict[str, list[np.ndarray]] = {f.name: [] for f in TOKEN_STATS_SCHEMA}
    for seed in range(1, seeds + 1):
        torch.manual_seed(seed)
        config = GPTNeoXConfig(
            initializer_range=init_std(64),
            vocab_size=vocab,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=256,
            max_position_embeddings=2048,
            tie_word_embeddings=False,
        )
        model = GPTNeoXForCausalLM(config).eval()
        with torch.inference_mode():
            for start in range(0, len(windows), 8):
                batch = windows[start : start + 8]
                logits = model(input_ids=batch).logits.float().reshape(-1, vocab)
                logits = scale * logits + zipf_weight * log_prior.float()
                rows = slice(start * window, start * window + len(logits))
                stats = token_statistics(log_probs(logits), targets[rows], unigram, top_k)
                columns["seed"].append(np.full(len(logits), seed, np.int32))
                columns["position"].append(np.arange(rows.start, rows.stop, dtype=np.int32))
                for name in ("surprisal", "entropy", "kl_uniform", "kl_unigram", "tail_mass"):
                    columns[name].append(getattr(stats, name).numpy())
                columns["topk_ids"].append(stats.topk_ids.to(torch.int32).numpy())
                columns["topk_logprobs"].append(stats.topk_logprobs.numpy())
    arrays = {}
    for f in TOKEN_STATS_SCHEMA:
        values = np.concatenate(columns[f.name])
        if pa.types.is_list(f.type):
            offsets = pa.array(np.arange(0, values.size + 1, top_k, dtype=np.int32))
            arrays[f.name] = pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), f.type.value_type))
        else:
            arrays[f.name] = pa.array(values, f.type)
    return pa.table(arrays, schema=TOKEN_STATS_SCHEMA)


def realistic_vocab_storage(flavour: str, **options) -> tuple[TableStorage, pa.Table]:
    """token_stats of `flavour` written by `write_partition` in a temporary lake, measured."""
    from extract.lake.partition_store import write_partition
    from extract.lake.tables import checkpoint_dir

    table = realistic_vocab_token_stats(flavour, **options)
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        target = checkpoint_dir(lake, "synthetic", flavour, 0)
        write_partition(lake, target, {"token_stats": table}, {"top_k": TARGET_TOP_K, "synthetic": flavour})
        return lake_storage(lake, ("token_stats",))["token_stats"], table


def describe_distributions(table: pa.Table) -> str:
    tail = table.column("tail_mass").to_numpy()
    logprobs = table.column("topk_logprobs").combine_chunks().values.to_numpy()
    top1 = np.exp(logprobs.reshape(table.num_rows, -1)[:, 0])
    entropy = table.column("entropy").to_numpy()
    return (
        f"median entropy {np.median(entropy):.2f} nats, median top-1 probability {np.median(top1):.3g}, "
        f"median tail mass {np.median(tail):.3f}"
    )


# --- main --------------------------------------------------------------------------------------


def default_lake() -> Path:
    from extract.config import load_settings

    return load_settings().paths.lake


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", type=Path, default=None, help="lake folder (default: the configured warehouse's)")
    parser.add_argument(
        "--vocab", type=int, default=None, help="output vocabulary (default: from kl_uniform + entropy)"
    )
    parser.add_argument(
        "--no-realistic-vocab", action="store_true", help=f"skip the measurement at vocabulary {REALISTIC_VOCAB:,}"
    )
    args = parser.parse_args(argv)
    lake = (args.lake or default_lake()).resolve()
    partitions = complete_partitions(lake)
    if not partitions:
        raise SystemExit(f"{lake}: no complete checkpoint partition (run `make demo` or pass --lake)")
    top_k = lake_top_k(lake)
    print(f"Lake {lake}: {len(partitions)} complete partitions, top_k {top_k}")
    storage = lake_storage(lake)
    print("\n".join(format_storage(storage["token_stats"], "token, seed", top_k)))
    print("\n".join(format_storage(storage["pair_kl"], "token, pair")))
    print()
    print("The same rows re-encoded by the current writer (extract/lake.py _write_parquet):")
    rewritten = rewritten_storage(lake)
    print("\n".join(format_storage(rewritten["token_stats"], "token, seed", top_k)))
    print("\n".join(format_storage(rewritten["pair_kl"], "token, pair")))
    last = partitions[-1]
    for name in ("token_stats", "pair_kl"):
        print(f"  writer options on {name} of {last.relative_to(lake)} (bytes per record, write time):")
        print("\n".join(writer_options_report(pq.read_table(last / f"{name}.parquet"))))
    print()
    started = time.perf_counter()
    print("\n".join(format_comparison(compare_kl(lake, args.vocab))))
    print(f"  ({time.perf_counter() - started:.1f} s)")
    if args.no_realistic_vocab:
        return
    print()
    print(
        f"Realistic vocabulary (synthetic, not the lake): token_stats at vocabulary {REALISTIC_VOCAB:,}, "
        f"k = {TARGET_TOP_K}, 4,096 tokens x 5 seeds, written by extract.lake.partition_store.write_partition"
    )
    for flavour in FLAVOURS:
        started = time.perf_counter()
        measured, table = realistic_vocab_storage(flavour)
        print(f"  {flavour}: {describe_distributions(table)} ({time.perf_counter() - started:.0f} s)")
        print("\n".join("  " + line for line in format_storage(measured, "token, seed", [TARGET_TOP_K])))
        print("    writer options (bytes per record, write time):")
        print("\n".join("  " + line for line in writer_options_report(table)))


if __name__ == "__main__":
    main()
