"""A synthetic lake at any scale: the real lake's layout and schemas, values shaped like PolyPythia's.

The warehouse benchmark (`benchmarks/warehouse.py`) needs a lake of the paper's size (5 sizes x
5 seeds x 20 steps x 4,662 evaluation tokens) and one of 100 times the tokens, which no model run
on this machine could produce. `write_synthetic_lake` writes one for any `Grid`: every table of
docs/architecture.md (Lake contracts) with the contract's schemas, imported from the code that
writes the real lake, and checkpoint partitions written through `extract.lake.partition_store.write_partition`,
so a reader never sees half of one.

The values follow a small latent model of training, so that every mart has realistic curves:

- Each evaluation token is drawn from a Zipf law over the vocabulary (id = frequency rank) and has
  a difficulty: its surprisal under a fully trained model, which grows with its unigram surprisal.
- Training runs through three phases, by step: random init (every seed near uniform, surprisal
  about log V, seeds 0.2 nats apart), unigram (surprisal -> the token's unigram surprisal, seeds
  converge), context (surprisal -> the difficulty, scaled by model size; seeds diverge sharply,
  then slowly re-converge, larger models more).
- Per seed and token, one normal deviate moves that seed's surprisal, entropy and its KL to every
  other seed together, so pair KLs are consistent per token; every KL is exp(...) >= 0.
- Top-k: the target token is merged, at its own probability exp(-surprisal), into k other
  candidates whose probabilities fall off as a power law with an exponent set by the entropy; the
  log-probabilities are sorted descending and tail_mass = 1 - sum(top-k probabilities). The
  candidate ids come from lists drawn from the Zipf law without replacement (one per context
  cluster, the frequency ranking in the unigram phase, a per-seed random list at init), so ids
  are Zipf-distributed, distinct within a row, and shared across seeds where the seeds agree.

Every partition's values come from a generator seeded by (grid seed, size, step), so a partition
is the same whenever and in whatever order it is written. A partition whose manifest already
carries this grid's digest (`code_version = synthetic-<digest>`) is skipped: generation is
restartable and a rerun writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from extract.config import IclConfig
from extract.inputs.brown_corpus import Document
from extract.inputs.eval_tokens import EVAL_TOKENS_SCHEMA, eval_documents_table, eval_set_hash, unigram_counts
from extract.inputs.icl_sequences import ICL_SEQUENCES_SCHEMA
from extract.inputs.token_tags import TOKEN_POS_SCHEMA
from extract.lake.partition_store import (
    MANIFEST,
    read_manifest,
    write_partition,
    write_table_atomically,
)
from extract.lake.tables import checkpoint_dir
from extract.measures.icl_scores import icl_scores_table
from extract.measures.token_distributions import PAIR_KL_SCHEMA, TOKEN_STATS_SCHEMA
from extract.registry import suite_table_path

GENERATOR_VERSION = 1
EVAL_SET = "brown-heldout"
MARKER = "synthetic_lake.json"

# PolyPythia: sizes with their parameter counts, and 20 of its checkpoints (every power of two up
# to 512, then the thousands to the last step, 143,000).
PYTHIA_N_PARAMS = {
    "14m": 14_067_712,
    "31m": 30_494_720,
    "70m": 70_426_624,
    "160m": 162_322_944,
    "410m": 405_334_016,
}
PAPER_STEPS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 143000)
PAPER_TOKENS = 4_662

# Bytes on disk per row and per top-k list value, measured on lakes this module wrote (zstd, as
# extract.lake writes them) and rounded up: the disk check's estimate.
BYTES_PER_TOKEN_STATS_SCALARS = 30.0
BYTES_PER_TOPK_ID = 1.6
BYTES_PER_TOPK_LOGPROB = {True: 1.6, False: 4.4}  # mantissa rounded to <= 12 bits, or not
BYTES_PER_PAIR_KL_ROW = 8.0
DISK_MARGIN_BYTES = 1 << 30


class InsufficientDiskSpace(OSError):
    """The lake would not fit on its disk; the message gives both numbers."""


@dataclass(frozen=True)
class Grid:
    """What a synthetic lake holds: one suite, sizes x seeds x steps, n_tokens evaluation tokens."""

    suite: str = "synthetic"
    sizes: tuple[str, ...] = tuple(PYTHIA_N_PARAMS)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    steps: tuple[int, ...] = PAPER_STEPS
    n_tokens: int = PAPER_TOKENS
    top_k: int = 32
    vocab: int = 50_304
    window: int = 128
    icl: IclConfig = field(default_factory=IclConfig)
    # Mantissa bits kept in the top-k log-probabilities (23: full float32). Nothing in the
    # warehouse reads them and they are two thirds of the lake's bytes: 10 bits (a relative
    # precision of 5e-4) let zstd store them in a third of the bytes (the 100x lake: 25 GB instead
    # of about 45). The scalars dbt reads keep full float32.
    logprob_bits: int = 10
    rng_seed: int = 0

    def __post_init__(self) -> None:
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"a grid needs at least two distinct seeds, not {self.seeds}")
        if len(set(self.sizes)) != len(self.sizes) or len(set(self.steps)) != len(self.steps):
            raise ValueError("sizes and steps must not repeat")
        if self.n_tokens < 1 or self.window < 2 or not 1 <= self.top_k < self.vocab // 4:
            raise ValueError("n_tokens >= 1, window >= 2 and 1 <= top_k < vocab / 4")
        if not 1 <= self.logprob_bits <= 23:
            raise ValueError(f"logprob_bits must be 1..23, not {self.logprob_bits}")
        for size in self.sizes:
            n_params(size)

    @property
    def partitions(self) -> list[tuple[str, int]]:
        return [(size, step) for size in self.sizes for step in self.steps]

    def digest(self) -> str:
        """Identifies every value of a partition: all parameters but the lists of sizes and
        steps (a partition's values depend only on its own size and step)."""
        keys = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("sizes", "steps")}
        keys["icl"] = dataclasses.asdict(self.icl)
        keys["seeds"] = list(self.seeds)
        keys["version"] = GENERATOR_VERSION
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def code_version(self) -> str:
        return f"synthetic-{self.digest()}"

    def rows(self) -> dict[str, int]:
        """Rows each checkpoint table holds over the whole grid."""
        n_seeds, n_partitions = len(self.seeds), len(self.partitions)
        return {
            "token_stats": n_partitions * n_seeds * self.n_tokens,
            "pair_kl": n_partitions * n_seeds * (n_seeds - 1) * self.n_tokens,
            "icl_scores": n_partitions * n_seeds * self.icl.max_sequences,
        }


def paper_grid(token_scale: int = 1, **changes) -> Grid:
    """The paper's grid (5 PolyPythia sizes x 5 seeds x 20 steps) with token_scale x 4,662 tokens."""
    return Grid(n_tokens=PAPER_TOKENS * token_scale, **changes)


def n_params(size: str) -> int:
    """PolyPythia's parameter count for its size names; otherwise read from the name (`5m`, `1.4b`)."""
    if size in PYTHIA_N_PARAMS:
        return PYTHIA_N_PARAMS[size]
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kmb])", size.lower())
    if not match:
        raise ValueError(f"size {size!r} is neither a PolyPythia size nor a count like '5m' or '1.4b'")
    return int(float(match[1]) * {"k": 1e3, "m": 1e6, "b": 1e9}[match[2]])


# --- Disk ---------------------------------------------------------------------------------------


def estimate_partition_bytes(grid: Grid) -> int:
    """Bytes one checkpoint partition takes on disk (an estimate with a margin)."""
    n_seeds = len(grid.seeds)
    per_value = BYTES_PER_TOPK_ID + BYTES_PER_TOPK_LOGPROB[grid.logprob_bits <= 12]
    token_stats = n_seeds * grid.n_tokens * (BYTES_PER_TOKEN_STATS_SCALARS + grid.top_k * per_value)
    pair_kl = n_seeds * (n_seeds - 1) * grid.n_tokens * BYTES_PER_PAIR_KL_ROW
    return int(token_stats + pair_kl + n_seeds * grid.icl.max_sequences * 32 + 8192)


def estimate_lake_bytes(grid: Grid, partitions: list[tuple[str, int]] | None = None) -> int:
    """Bytes the lake of `grid` takes on disk (`partitions`: only those checkpoint partitions)."""
    n_partitions = len(grid.partitions if partitions is None else partitions)
    suite_tables = grid.n_tokens * 60 + grid.vocab * 12 + grid.icl.max_sequences * (grid.icl.target_position + 1) * 3
    return n_partitions * estimate_partition_bytes(grid) + suite_tables


def lake_bytes(root: Path) -> int:
    """Bytes of every file under `root`."""
    root = Path(root)
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) if root.exists() else 0


def check_free_space(root: Path, needed: int) -> None:
    """Raises InsufficientDiskSpace when the disk holding `root` has less than `needed` bytes
    (plus a margin of DISK_MARGIN_BYTES) free."""
    probe = Path(root)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed + DISK_MARGIN_BYTES > free:
        raise InsufficientDiskSpace(
            f"the synthetic lake at {root} needs about {needed / 1e9:.1f} GB more, plus "
            f"{DISK_MARGIN_BYTES / 1e9:.1f} GB to spare, but its disk has {free / 1e9:.1f} GB free"
        )


# --- Vocabulary and evaluation set --------------------------------------------------------------

# The most frequent types of the English BPE vocabulary with their Penn tag; ids 1.. in this order.
# fmt: off
COMMON_TOKENS = (
    (" the", "DT"), (",", ","), (".", "."), (" of", "IN"), (" and", "CC"), (" to", "TO"), (" a", "DT"),
    (" in", "IN"), (" is", "VBZ"), (" that", "IN"), (" for", "IN"), (" was", "VBD"), (" he", "PRP"),
    (" it", "PRP"), (" with", "IN"), (" as", "IN"), (" his", "PRP$"), (" on", "IN"), (" be", "VB"),
    (" at", "IN"), (" by", "IN"), (" I", "PRP"), ("''", "''"), ("``", "``"), (" had", "VBD"),
    (" not", "RB"), (" are", "VBP"), (" but", "CC"), (" from", "IN"), (" or", "CC"), (" have", "VBP"),
    (" an", "DT"), (" they", "PRP"), (" which", "WDT"), (" one", "CD"), (" you", "PRP"), (" were", "VBD"),
    (" her", "PRP$"), (" all", "DT"), (" she", "PRP"), (" there", "EX"), (" would", "MD"), (";", ":"),
    (" their", "PRP$"), (" we", "PRP"), (" him", "PRP"), (" been", "VBN"), (" has", "VBZ"), (" when", "WRB"),
    (" who", "WP"), (" will", "MD"), (" more", "JJR"), (" no", "DT"), (" if", "IN"), (" out", "RP"),
    ("?", "."), (" so", "RB"), (" said", "VBD"), (" what", "WP"), (" up", "RP"), (" its", "PRP$"),
    (" about", "IN"), (" into", "IN"), (" than", "IN"), (" them", "PRP"), (" can", "MD"), (" only", "RB"),
    ("(", "("), (")", ")"), (" other", "JJ"), (" new", "JJ"), (" some", "DT"), (" could", "MD"),
    (" time", "NN"), ("'s", "POS"), (" these", "DT"), (" two", "CD"), (" may", "MD"), (" then", "RB"),
    (" do", "VBP"), (" first", "JJ"), (":", ":"), (" any", "DT"), (" my", "PRP$"), (" now", "RB"),
    (" such", "JJ"), (" like", "IN"), (" our", "PRP$"), (" over", "IN"), (" man", "NN"), ("!", "."),
    (" me", "PRP"), (" even", "RB"), (" most", "RBS"), (" made", "VBN"), (" after", "IN"), (" also", "RB"),
    (" did", "VBD"), (" many", "JJ"), (" before", "IN"), (" must", "MD"), (" through", "IN"), ("$", "$"),
    (" back", "RB"), (" years", "NNS"), (" where", "WRB"), (" much", "JJ"), (" your", "PRP$"), (" way", "NN"),
    (" well", "RB"), (" down", "RP"), (" should", "MD"), (" because", "IN"), (" each", "DT"), (" just", "RB"),
    (" those", "DT"), (" people", "NNS"), (" Mr", "NNP"), (" how", "WRB"), (" too", "RB"), (" little", "JJ"),
    (" state", "NN"), (" good", "JJ"), (" very", "RB"), (" make", "VB"), (" world", "NN"), (" still", "RB"),
    (" own", "JJ"), (" see", "VB"), (" men", "NNS"), (" work", "NN"), (" long", "JJ"), (" get", "VB"),
    (" here", "RB"), (" between", "IN"), (" both", "DT"), (" life", "NN"), (" being", "VBG"), ("#", "#"),
)
# Tags of every other type (pseudo-words), by share; None: a piece no word holds the majority of.
OPEN_CLASS_TAGS = (
    ("NN", 0.28), ("NNS", 0.11), ("NNP", 0.12), ("JJ", 0.12), ("VB", 0.05), ("VBD", 0.06), ("VBG", 0.04),
    ("VBN", 0.05), ("VBZ", 0.03), ("VBP", 0.02), ("RB", 0.05), ("CD", 0.02), ("FW", 0.005), ("UH", 0.005),
    (None, 0.04),
)
# fmt: on
SYLLABLES = tuple(c + v for c in "bcdfghklmnprstvwz" for v in "aeiou") + ("th", "st", "er", "an", "in", "on")
# fmt: off
BROWN_CATEGORIES = (
    "news", "editorial", "reviews", "religion", "hobbies", "lore", "belles_lettres", "government",
    "learned", "fiction", "mystery", "science_fiction", "adventure", "romance", "humor",
)
# fmt: on
ZIPF_EXPONENT, ZIPF_OFFSET = 1.07, 2.7
TRAIN_TOKENS = 1_400_000  # Brown's training split under a BPE tokenizer, about
DOCUMENT_TOKENS = (1_800, 2_700)  # tokens per held-out document, uniform


def zipf_probabilities(vocab: int) -> np.ndarray:
    """p(id) for ids 0..vocab-1: a Zipf-Mandelbrot law over frequency rank = id; id 0 (the
    end-of-text token) never occurs in text."""
    ranks = np.arange(vocab, dtype=np.float64)
    p = (ranks + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    p[0] = 0.0
    return p / p.sum()


def token_texts(vocab: int) -> list[str]:
    """The text of every id: COMMON_TOKENS first, then pronounceable pseudo-words (most with a
    leading space, a word's start; the rest continue the word before them)."""
    texts = ["<|endoftext|>"] + [text for text, _ in COMMON_TOKENS]
    n = len(SYLLABLES)
    for token_id in range(len(texts), vocab):
        word, rest = "", token_id
        while True:
            word += SYLLABLES[rest % n]
            rest //= n
            if rest == 0:
                break
        texts.append((" " if token_id % 5 else "") + word)
    return texts[:vocab]


def token_tags(vocab: int) -> list[str | None]:
    """The Penn tag of every id (fixed per type), as token_pos holds them."""
    tags: list[str | None] = [None] + [tag for _, tag in COMMON_TOKENS]
    rng = np.random.default_rng(12_345)
    names = [tag for tag, _ in OPEN_CLASS_TAGS]
    shares = np.array([share for _, share in OPEN_CLASS_TAGS])
    drawn = rng.choice(len(names), size=max(vocab - len(tags), 0), p=shares / shares.sum())
    tags += [names[i] for i in drawn]
    return tags[:vocab]


def _gumbel_top_lists(rng: np.random.Generator, log_p: np.ndarray, n_lists: int, length: int) -> np.ndarray:
    """n_lists lists of `length` distinct ids, each drawn from exp(log_p) without replacement
    (Gumbel top-k), most probable first."""
    lists = np.empty((n_lists, length), dtype=np.int32)
    for start in range(0, n_lists, 256):
        stop = min(start + 256, n_lists)
        keys = log_p[None, :] + rng.gumbel(size=(stop - start, len(log_p)))
        top = np.argpartition(-keys, length, axis=1)[:, :length]
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
        lists[start:stop] = np.take_along_axis(top, order, axis=1)
    return lists


N_CONTEXT_LISTS = 4_096


@dataclass
class LakeModel:
    """Everything shared by a grid's partitions: the evaluation set and the per-token latents."""

    grid: Grid
    token_id: np.ndarray  # [n_tokens] int32
    unigram_surprisal: np.ndarray  # [n_tokens] -log p_unigram(s_t), nats
    difficulty: np.ndarray  # [n_tokens] surprisal under a fully trained model, mean 1
    cluster: np.ndarray  # [n_tokens] the context's top-k list among context_lists
    context_lists: np.ndarray  # [N_CONTEXT_LISTS, k + 1] int32
    unigram_list: np.ndarray  # [k + 1] int32, the most frequent ids
    init_lists: np.ndarray  # [n_seeds, k + 1] int32, random ids
    unigram_entropy: float
    uniform_cross_entropy: float  # E_uniform[-log q], q the unigram law
    tables: dict[str, pa.Table]  # the suite tables: eval_documents, eval_tokens, unigram, token_pos, icl_sequences
    eval_set_hash: str


def build_model(grid: Grid) -> LakeModel:
    """The evaluation set and latents of `grid` (deterministic in grid.rng_seed)."""
    rng = np.random.default_rng([grid.rng_seed, 0])
    k, vocab = grid.top_k, grid.vocab
    p = zipf_probabilities(vocab)
    texts, tags = token_texts(vocab), token_tags(vocab)

    # Training counts, and the smoothed unigram law kl_unigram is taken against.
    counts = rng.multinomial(TRAIN_TOKENS, p)
    q = (counts + 1.0) / (counts.sum() + vocab)
    unigram_entropy = float(-(q * np.log(q)).sum())
    uniform_cross_entropy = float(-np.log(q).mean())

    # Held-out documents cut into windows, taken in order until n_tokens targets.
    token_id = rng.choice(vocab, size=grid.n_tokens, p=p).astype(np.int32)
    doc_lengths: list[int] = []
    while sum(doc_lengths) < grid.n_tokens:
        doc_lengths.append(int(rng.integers(*DOCUMENT_TOKENS)))
    doc_of = np.repeat(np.arange(len(doc_lengths)), doc_lengths)[: grid.n_tokens]
    starts = np.concatenate([[0], np.cumsum(doc_lengths)[:-1]])
    in_doc = np.arange(grid.n_tokens) - starts[doc_of]
    windows_before = np.concatenate([[0], np.cumsum([-(-n // grid.window) for n in doc_lengths])[:-1]])
    window_id = (windows_before[doc_of] + in_doc // grid.window).astype(np.int32)
    context_len = (in_doc % grid.window).astype(np.int32)
    # Documents run past the evaluated prefix with more text, as Brown's do.
    extra = rng.choice(vocab, size=int(sum(doc_lengths)) - grid.n_tokens, p=p)
    all_ids = np.concatenate([token_id, extra])
    doc_ids = [f"s{d:04d}" for d in range(len(doc_lengths))]
    documents, char_start, char_end = [], np.empty(grid.n_tokens, np.int32), np.empty(grid.n_tokens, np.int32)
    for d, (start, length) in enumerate(zip(starts, doc_lengths)):
        pieces = [texts[i] for i in all_ids[start : start + length]]
        offsets = np.concatenate([[0], np.cumsum([len(piece) for piece in pieces])])
        stop = min(start + length, grid.n_tokens)
        if stop > start:
            char_start[start:stop] = offsets[: stop - start]
            char_end[start:stop] = offsets[1 : stop - start + 1]
        documents.append(Document(doc_ids[d], BROWN_CATEGORIES[d % len(BROWN_CATEGORIES)], "".join(pieces)))

    position = np.arange(grid.n_tokens, dtype=np.int32)
    token_text = [texts[i] for i in token_id]
    eval_tokens = pa.table(
        {
            "eval_set": [EVAL_SET] * grid.n_tokens,
            "position": position,
            "doc_id": [doc_ids[d] for d in doc_of],
            "window_id": window_id,
            "token_id": token_id,
            "token_text": token_text,
            "char_start": char_start,
            "char_end": char_end,
            "context_len": context_len,
        },
        schema=EVAL_TOKENS_SCHEMA,
    )
    pos = [tags[i] for i in token_id]
    prev_pos = [None if context_len[i] == 0 else pos[i - 1] for i in range(grid.n_tokens)]
    token_pos = pa.table(
        {
            "eval_set": [EVAL_SET] * grid.n_tokens,
            "position": position,
            "word": [None if tag is None else text.strip() for tag, text in zip(pos, token_text)],
            "pos": pos,
            "prev_pos": prev_pos,
        },
        schema=TOKEN_POS_SCHEMA,
    )
    seen = np.nonzero(counts)[0]
    unigram = pa.table({"token_id": seen.astype(np.int32), "count": counts[seen].astype(np.int64)})
    length = grid.icl.target_position + 1
    n_sequences = grid.icl.max_sequences
    icl_sequences = pa.table(
        {
            "sequence_id": np.arange(n_sequences, dtype=np.int32),
            "doc_id": [doc_ids[i % len(doc_ids)] for i in range(n_sequences)],
            "token_ids": list(rng.choice(vocab, size=(n_sequences, length), p=p).astype(np.int32)),
        },
        schema=ICL_SEQUENCES_SCHEMA,
    )

    # Latents: unigram surprisal, and a difficulty that grows with it (rare tokens are hard in
    # context too), lognormal around it.
    unigram_surprisal = -np.log(q[token_id])
    difficulty = unigram_surprisal * np.exp(rng.normal(-1.0, 0.8, grid.n_tokens))
    difficulty = np.minimum(difficulty, 30.0)
    difficulty /= difficulty.mean()
    previous = np.concatenate([[0, 0], token_id[:-2]]), np.concatenate([[0], token_id[:-1]])
    cluster = ((previous[0].astype(np.int64) * 7_919 + previous[1] * 104_729) % N_CONTEXT_LISTS).astype(np.int32)
    log_p = np.log(np.maximum(p, 1e-300))
    context_lists = _gumbel_top_lists(rng, 0.8 * log_p, N_CONTEXT_LISTS, k + 1)
    init_lists = _gumbel_top_lists(rng, np.zeros(vocab), len(grid.seeds), k + 1)
    unigram_list = np.argsort(-counts, kind="stable")[: k + 1].astype(np.int32)

    tables = {
        "eval_documents": eval_documents_table(EVAL_SET, documents),
        "eval_tokens": eval_tokens,
        "unigram": unigram,
        "token_frequency": unigram_counts(token_id),  # eval.frequency's default: the evaluation tokens
        "token_pos": token_pos,
        "icl_sequences": icl_sequences,
    }
    return LakeModel(
        grid=grid,
        token_id=token_id,
        unigram_surprisal=unigram_surprisal,
        difficulty=difficulty,
        cluster=cluster,
        context_lists=context_lists,
        unigram_list=unigram_list,
        init_lists=init_lists,
        unigram_entropy=unigram_entropy,
        uniform_cross_entropy=uniform_cross_entropy,
        tables=tables,
        eval_set_hash=eval_set_hash(eval_tokens),
    )


# --- Training curves ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """Where a checkpoint is in training: unigram (0 -> 1 over the first ~100 steps), context
    (0 -> 1 around a few thousand steps), and the seeds' expected KL at that point."""

    unigram: float
    context: float
    pair_kl: float
    final_cross_entropy: float
    size_scale: float  # log10(n_params / 14M), 0 for the smallest PolyPythia model


def phase(size: str, step: int) -> Phase:
    scale = max(math.log10(n_params(size) / PYTHIA_N_PARAMS["14m"]), 0.0)
    unigram = step / (step + 12.0)
    midpoint = 1_800.0 * 10 ** (-0.1 * scale)
    context = 1.0 / (1.0 + math.exp(-(math.log(step + 1.0) - math.log(midpoint)) / 0.75))
    final_kl = 0.2 + 0.5 * 10 ** (-0.3 * scale)
    divergence = (0.6 + 0.1 * scale) * 4 * context * (1 - context)
    pair_kl = 0.2 * (1 - unigram) ** 2 + 0.008 + divergence + context * final_kl
    final_cross_entropy = 2.9 + 1.6 * 10 ** (-0.25 * scale)
    return Phase(unigram, context, pair_kl, final_cross_entropy, scale)


# --- One checkpoint partition -------------------------------------------------------------------


def _partition_rng(grid: Grid, size: str, step: int) -> np.random.Generator:
    size_key = int.from_bytes(hashlib.sha256(size.encode()).digest()[:4], "little")
    return np.random.default_rng([grid.rng_seed, 1, size_key, int(step)])


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """float32 values rounded to nearest with `bits` of the 23 mantissa bits kept (monotone, so
    sorted values stay sorted)."""
    if bits >= 23:
        return values
    shift = 23 - bits
    raw = values.astype(np.float32).view(np.uint32)
    rounded = (raw + np.uint32(1 << (shift - 1))) & np.uint32(~((1 << shift) - 1) & 0xFFFFFFFF)
    return rounded.view(np.float32)


def _list_array(values: np.ndarray, value_type: pa.DataType) -> pa.Array:
    n, k = values.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), type=value_type))


def _top_k(
    model: LakeModel, rng: np.random.Generator, at: Phase, seed_index: int, surprisal: np.ndarray, entropy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One seed's top-k ids and log-probabilities ([n, k], sorted descending) and tail masses."""
    grid, n, k = model.grid, len(surprisal), model.grid.top_k
    # Which list the candidates come from: init (random), unigram (frequency order), context.
    draw = rng.random(n)
    shared = rng.random(n) >= min(0.9, 0.6 * math.sqrt(at.pair_kl))
    context_index = np.where(shared, model.cluster, (model.cluster + 977 * (seed_index + 1)) % N_CONTEXT_LISTS)
    candidates = model.context_lists[context_index]
    candidates[draw < 1 - at.unigram] = model.init_lists[seed_index]
    unigram_rows = (draw >= 1 - at.unigram) & (draw < 1 - at.unigram * at.context)
    candidates[unigram_rows] = model.unigram_list
    # Drop the target from the candidates (it is placed at its own probability below).
    target = model.token_id
    is_target = candidates == target[:, None]
    drop = np.where(is_target.any(axis=1), is_target.argmax(axis=1), k)
    index = np.arange(k)[None, :]
    others = np.take_along_axis(candidates, np.where(index < drop[:, None], index, index + 1), axis=1)

    # The others' probabilities: a power law over rank, steeper for a peaked distribution, with
    # their share of the mass outside the target's set by the entropy.
    q = np.exp(-surprisal)
    alpha = np.clip(2.4 - 0.2 * entropy, 0.03, 2.5)
    shape = np.exp(-alpha[:, None] * np.log(np.arange(1, k + 1))[None, :])
    shape /= shape.sum(axis=1, keepdims=True)
    outside = 1.0 / (1.0 + (k / np.exp(entropy)) ** 1.5)
    probs = ((1.0 - q) * (1.0 - outside))[:, None] * shape
    # Merge the target in at its rank; the top k of the k + 1 are kept.
    rank = (probs > q[:, None]).sum(axis=1)
    source = np.where(index < rank[:, None], index, index - 1).clip(0)
    at_target = index == rank[:, None]
    top_probs = np.where(at_target, q[:, None], np.take_along_axis(probs, source, axis=1))
    top_ids = np.where(at_target, target[:, None], np.take_along_axis(others, source, axis=1)).astype(np.int32)
    logprobs = round_mantissa(np.log(top_probs).astype(np.float32), grid.logprob_bits)
    tail = np.clip(1.0 - np.exp(logprobs.astype(np.float64)).sum(axis=1), 0.0, 1.0).astype(np.float32)
    return top_ids, logprobs, tail


def checkpoint_tables(model: LakeModel, size: str, step: int) -> dict[str, pa.Table]:
    """token_stats, pair_kl and icl_scores of one partition, rows ordered as the extraction's."""
    grid = model.grid
    rng = _partition_rng(grid, size, step)
    at = phase(size, step)
    seeds = np.array(grid.seeds, dtype=np.int32)
    n_seeds, n = len(seeds), grid.n_tokens
    log_v = math.log(grid.vocab)
    u, c = at.unigram, at.context

    # Per-token means at this checkpoint, then one deviate per (seed, token) moving them together.
    final = model.difficulty * at.final_cross_entropy
    mean_surprisal = (1 - u) * (log_v + 0.1) + u * ((1 - c) * model.unigram_surprisal + c * final)
    mean_entropy = (1 - u) * (log_v - 0.1) + u * ((1 - c) * model.unigram_entropy + c * (0.8 * final**0.9 + 0.25))
    sigma = float(np.clip(0.6 * math.sqrt(at.pair_kl), 0.02, 0.8))
    deviate = rng.standard_normal((n_seeds, n))
    seed_offset = rng.normal(0.0, 0.01, (n_seeds, 1))
    surprisal = mean_surprisal * np.exp(sigma * deviate - sigma**2 / 2 + seed_offset)
    surprisal += (1 - u) * 0.45 * rng.standard_normal((n_seeds, n))  # a random init's own spread
    surprisal = np.maximum(surprisal, 0.0)
    # a random init's distributions are all nearly uniform; trained ones vary from token to token
    entropy_noise = 0.003 + 0.147 * u
    entropy = mean_entropy * np.exp(
        0.7 * sigma * u * deviate + entropy_noise * rng.standard_normal((n_seeds, n)) - entropy_noise**2 / 2
    )
    entropy = np.clip(entropy, 1e-4, log_v - 1e-4)
    expected_cross = (1 - u) * model.uniform_cross_entropy + u * (
        (1 - c) * model.unigram_entropy + c * 0.5 * (model.unigram_surprisal + model.unigram_entropy)
    )
    kl_unigram = np.maximum(expected_cross - entropy, 0.0) * np.exp(0.2 * rng.standard_normal((n_seeds, n)))
    kl_unigram += 0.02 * (1 - u) + 0.05 * u * (1 - c)

    columns: dict[str, list] = {name: [] for name in ("topk_ids", "topk_logprobs", "tail_mass")}
    for i in range(n_seeds):
        ids, logprobs, tail = _top_k(model, rng, at, i, surprisal[i], entropy[i])
        columns["topk_ids"].append(ids)
        columns["topk_logprobs"].append(logprobs)
        columns["tail_mass"].append(tail)
    k = grid.top_k
    token_stats = pa.table(
        {
            "seed": np.repeat(seeds, n),
            "position": np.tile(np.arange(n, dtype=np.int32), n_seeds),
            "surprisal": surprisal.astype(np.float32).reshape(-1),
            "entropy": entropy.astype(np.float32).reshape(-1),
            "kl_uniform": (log_v - entropy).astype(np.float32).reshape(-1),
            "kl_unigram": kl_unigram.astype(np.float32).reshape(-1),
            "topk_ids": _list_array(np.concatenate(columns["topk_ids"]).reshape(-1, k), pa.int32()),
            "topk_logprobs": _list_array(np.concatenate(columns["topk_logprobs"]).reshape(-1, k), pa.float32()),
            "tail_mass": np.concatenate(columns["tail_mass"]),
        },
        schema=TOKEN_STATS_SCHEMA,
    )

    # Pair KLs: the checkpoint's level, a per-token weight (harder tokens disagree more once
    # context is learnt), both seeds' deviates and an asymmetric part per ordered pair.
    late_weight = (final + 0.3) ** 0.8
    weight = (1 - c) + c * late_weight / late_weight.mean()
    a, b = np.nonzero(~np.eye(n_seeds, dtype=bool))  # ordered by (a, b), as the extraction's
    spread = 0.6
    log_kl = spread * (deviate[a] + deviate[b]) / math.sqrt(2) + 0.25 * rng.standard_normal((len(a), n))
    kl = at.pair_kl * weight[None, :] * np.exp(log_kl - (spread**2 + 0.25**2) / 2)
    pair_kl = pa.table(
        {
            "seed_a": np.repeat(seeds[a], n),
            "seed_b": np.repeat(seeds[b], n),
            "position": np.tile(np.arange(n, dtype=np.int32), len(a)),
            "kl": kl.astype(np.float32).reshape(-1),
        },
        schema=PAIR_KL_SCHEMA,
    )

    # ICL: the target's surprisal with the long context, and the gain of the long over the short
    # one, which appears with induction heads (late in the context phase) and grows with size.
    sequences = model.tables["icl_sequences"]
    n_sequences = sequences.num_rows
    base = (1 - u) * (log_v + 0.1) + u * ((1 - c) * 7.0 + c * at.final_cross_entropy)
    gain = c**1.5 * (0.35 + 0.1 * at.size_scale)
    per_seed = {}
    for seed in grid.seeds:
        long = base * np.exp(0.35 * rng.standard_normal(n_sequences) - 0.06)
        short = np.maximum(long + gain + 0.3 * rng.standard_normal(n_sequences), 0.0)
        per_seed[int(seed)] = (short.astype(np.float32), long.astype(np.float32))
    icl_scores = icl_scores_table(sequences, grid.icl, per_seed)
    return {"token_stats": token_stats, "pair_kl": pair_kl, "icl_scores": icl_scores}


def make_manifest(model: LakeModel, size: str, step: int, tables: dict[str, pa.Table], timings_s: dict) -> dict:
    """The partition's manifest, with every key extract.pipeline.extract_checkpoint writes."""
    grid = model.grid
    digest = grid.digest()
    return {
        "suite": grid.suite,
        "size": size,
        "step": int(step),
        "n_params": n_params(size),
        "seeds": [int(s) for s in grid.seeds],
        "checkpoints": [
            {
                "seed": int(seed),
                "source": f"synthetic/pythia-{size}-seed{seed}@step{step}",
                "weights": "sha256:" + hashlib.sha256(f"{digest}/{size}/{seed}/{step}".encode()).hexdigest(),
            }
            for seed in grid.seeds
        ],
        "eval_set": EVAL_SET,
        "eval_set_hash": model.eval_set_hash,
        "top_k": grid.top_k,
        "device": "synthetic",
        "code_version": grid.code_version,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
        "rows": {name: table.num_rows for name, table in tables.items()},
        "timings_s": timings_s,
    }


def write_checkpoint(model: LakeModel, lake: Path, size: str, step: int) -> dict:
    """Generates and writes one partition (replacing any older copy whole); returns its manifest."""
    started = time.perf_counter()
    tables = checkpoint_tables(model, size, step)
    generated = time.perf_counter()
    manifest = make_manifest(model, size, step, tables, {"generate": round(generated - started, 3)})
    write_partition(Path(lake), checkpoint_dir(Path(lake), model.grid.suite, size, step), tables, manifest)
    return manifest


def partition_is_current(lake: Path, grid: Grid, size: str, step: int) -> bool:
    """True when the partition is complete and was written from this grid's parameters."""
    manifest = read_manifest(checkpoint_dir(Path(lake), grid.suite, size, step))
    return manifest is not None and manifest.get("code_version") == grid.code_version


def remove_partition(lake: Path, suite: str, size: str, step: int) -> bool:
    """Deletes a partition: its manifest first, so no reader sees it half gone. True if it existed."""
    directory = checkpoint_dir(Path(lake), suite, size, step)
    if not directory.exists():
        return False
    (directory / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(directory)
    return True


# --- The whole lake -----------------------------------------------------------------------------


@dataclass
class LakeReport:
    """What write_synthetic_lake did."""

    root: Path
    grid: Grid
    written: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    seconds: float
    bytes: int


SUITE_TABLES = ("eval_tokens", "unigram", "token_frequency", "token_pos", "icl_sequences")


def _suite_tables_current(lake: Path, grid: Grid) -> bool:
    """Written from this grid, every one of them (a lake written before a table existed gets it)."""
    marker = lake / MARKER
    if not marker.exists() or not all(suite_table_path(lake, name, grid.suite).exists() for name in SUITE_TABLES):
        return False
    return json.loads(marker.read_text()).get(grid.suite) == grid.code_version


def write_suite_tables(model: LakeModel, lake: Path) -> None:
    """eval_documents, and the suite's eval_tokens, unigram, token_frequency, token_pos and icl_sequences."""
    lake, grid = Path(lake), model.grid
    write_table_atomically(model.tables["eval_documents"], lake / "eval_documents" / "eval_documents.parquet")
    for name in SUITE_TABLES:
        write_table_atomically(model.tables[name], suite_table_path(lake, name, grid.suite))
    marker = lake / MARKER
    versions = json.loads(marker.read_text()) if marker.exists() else {}
    versions[grid.suite] = grid.code_version
    staging = marker.with_name(f".{MARKER}.tmp")
    staging.write_text(json.dumps(versions, indent=2, sort_keys=True))
    os.replace(staging, marker)


_WORKER_MODEL: LakeModel | None = None


def _init_worker(grid: Grid) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = build_model(grid)


def _write_in_worker(lake: Path, size: str, step: int) -> tuple[str, int]:
    assert _WORKER_MODEL is not None
    write_checkpoint(_WORKER_MODEL, lake, size, step)
    return size, step


def write_synthetic_lake(
    lake: Path,
    grid: Grid,
    partitions: list[tuple[str, int]] | None = None,
    *,
    workers: int = 1,
    force: bool = False,
    log=None,
) -> LakeReport:
    """Writes the synthetic lake of `grid` under `lake`: the suite tables and every checkpoint
    partition of the grid (or only `partitions`). Partitions already written from the same
    parameters are skipped unless `force`; the free disk space is checked first
    (InsufficientDiskSpace). `workers` > 1 generates partitions in that many processes."""
    started = time.perf_counter()
    lake = Path(lake)
    wanted = grid.partitions if partitions is None else [(size, int(step)) for size, step in partitions]
    unknown = [p for p in wanted if p[0] not in grid.sizes]
    if unknown:
        raise ValueError(f"partitions {unknown} name sizes outside the grid {grid.sizes}")
    todo = [p for p in wanted if force or not partition_is_current(lake, grid, *p)]
    skipped = [p for p in wanted if p not in todo]
    suite_tables = force or not _suite_tables_current(lake, grid)
    needed = estimate_lake_bytes(grid, todo) - (0 if suite_tables else estimate_lake_bytes(grid, []))
    if todo or suite_tables:
        check_free_space(lake, needed)
    lake.mkdir(parents=True, exist_ok=True)

    model = build_model(grid) if (suite_tables or (todo and workers <= 1)) else None
    if suite_tables:
        write_suite_tables(model, lake)
    written: list[tuple[str, int]] = []
    if todo and (workers <= 1 or len(todo) == 1):
        model = model or build_model(grid)
        for size, step in todo:
            write_checkpoint(model, lake, size, step)
            written.append((size, step))
            if log:
                log(f"{grid.suite}/{size}/step{step} ({len(written)}/{len(todo)})")
    elif todo:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(grid,)) as pool:
            futures = [pool.submit(_write_in_worker, lake, size, step) for size, step in todo]
            for future in futures:
                written.append(future.result())
                if log:
                    log(f"{grid.suite}/{written[-1][0]}/step{written[-1][1]} ({len(written)}/{len(todo)})")
    return LakeReport(lake, grid, written, skipped, time.perf_counter() - started, lake_bytes(lake))


def read_partition(lake: Path, suite: str, size: str, step: int) -> dict[str, pa.Table]:
    """The Parquet tables of one partition (for checks)."""
    directory = checkpoint_dir(Path(lake), suite, size, step)
    return {path.stem: pq.read_table(path) for path in sorted(directory.glob("*.parquet"))}
