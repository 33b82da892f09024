"""Writers for small synthetic Parquet lakes laid out as docs/architecture.md (Lake contracts) says.

Plain functions, not pytest fixtures, so that any test (dbt, reports, orchestration) can build a
lake in a temporary directory. Column types follow the contract exactly (int32 ids and
positions, float32 measurements, list<int32>/list<float32> top-k); every value written by
`write_synthetic_lake` is a dyadic fraction, so it survives float32 exactly and a test can
recompute every aggregate with numpy and compare closely.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from extract.lake.tables import checkpoint_dir
from extract.registry import TABLES  # the contract's schemas and paths, as the real lake is written


def _write(table_rows: dict[str, list], schema: pa.Schema, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pydict(table_rows, schema=schema)
    pq.write_table(table, path)
    return path


def _write_table(name: str, rows: dict[str, list], lake: Path, *where) -> Path:
    """The lake table `name` from `rows`, at its path for `where` (suite, or suite, size, step)."""
    table = TABLES[name]
    return _write(rows, table.schema, table.path(Path(lake), *where))


def assert_same_rows(got: dict, expected: dict) -> None:
    """Two extractions' tables (name -> DataFrame) hold the same rows in the same order; floats
    to float32 rounding (the same model on another process may sum in another order)."""
    for name, frame in expected.items():
        other = got[name]
        assert list(other.columns) == list(frame.columns) and len(other) == len(frame), name
        for column in frame.columns:
            a, b = frame[column].to_numpy(), other[column].to_numpy()
            if a.dtype.kind == "O":  # list columns (top-k ids and log-probabilities, fingerprints)
                a, b = np.stack(a), np.stack(b)
            if a.dtype.kind == "f":
                np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=f"{name}.{column}")
            else:
                assert np.array_equal(a, b), f"{name}.{column}"


def partition_dir(lake: Path, suite: str, size: str, step: int) -> Path:
    """The directory of one checkpoint partition: checkpoints/suite=/size=/step=."""
    return checkpoint_dir(Path(lake), suite, size, int(step))


def write_eval_documents(lake: Path, rows: dict[str, list]) -> Path:
    """lake/eval_documents/eval_documents.parquet from columns eval_set, doc_id, category, text."""
    return _write_table("eval_documents", rows, lake)


def write_eval_tokens(lake: Path, suite: str, rows: dict[str, list]) -> Path:
    """lake/eval_tokens/suite=<suite>/eval_tokens.parquet from the contract's columns, and the
    suite's token_frequency: the counts of those tokens, as eval.frequency's default writes it."""
    ids, counts = np.unique(np.asarray(rows["token_id"], dtype=np.int64), return_counts=True)
    _write_table("token_frequency", {"token_id": ids.tolist(), "count": counts.tolist()}, lake, suite)
    return _write_table("eval_tokens", rows, lake, suite)


def write_one_document(lake: Path, suite: str, token_texts: list[str], token_ids: list[int], window: int) -> None:
    """eval_documents and the suite's eval_tokens for one document (ca01) made of `token_texts`,
    cut into windows of `window` tokens."""
    n = len(token_texts)
    write_eval_documents(
        lake, {"eval_set": ["brown-heldout"], "doc_id": ["ca01"], "category": ["news"], "text": ["".join(token_texts)]}
    )
    starts = np.cumsum([0] + [len(t) for t in token_texts[:-1]]).tolist()
    write_eval_tokens(
        lake,
        suite,
        {
            "eval_set": ["brown-heldout"] * n,
            "position": list(range(n)),
            "doc_id": ["ca01"] * n,
            "window_id": [p // window for p in range(n)],
            "token_id": list(token_ids),
            "token_text": list(token_texts),
            "char_start": starts,
            "char_end": [s + len(t) for s, t in zip(starts, token_texts)],
            "context_len": [p % window for p in range(n)],
        },
    )


def write_unigram(lake: Path, suite: str, counts: dict[int, int]) -> Path:
    """lake/unigram/suite=<suite>/unigram.parquet: token counts of the reference corpus."""
    token_ids = sorted(counts)
    rows = {"token_id": token_ids, "count": [counts[t] for t in token_ids]}
    return _write_table("unigram", rows, lake, suite)


def write_vocabulary(lake: Path, suite: str, texts: dict[int, str]) -> Path:
    """lake/vocabulary/suite=<suite>/vocabulary.parquet: each token id's text."""
    token_ids = sorted(texts)
    return _write_table("vocabulary", {"token_id": token_ids, "token_text": [texts[t] for t in token_ids]}, lake, suite)


def write_token_pos(lake: Path, suite: str, rows: dict[str, list]) -> Path:
    """lake/token_pos/suite=<suite>/token_pos.parquet from eval_set, position, word, pos, prev_pos."""
    return _write_table("token_pos", rows, lake, suite)


def write_fingerprint_probes(lake: Path, suite: str, rows: dict[str, list]) -> Path:
    """lake/fingerprint_probes/suite=<suite>/fingerprint_probes.parquet from probe_id, kind, text, n_tokens."""
    return _write_table("fingerprint_probes", rows, lake, suite)


def write_loglik_texts(lake: Path, suite: str, rows: dict[str, list]) -> Path:
    """lake/loglik_texts/suite=<suite>/loglik_texts.parquet from text_id, doc_id, text, n_bytes, n_tokens."""
    return _write_table("loglik_texts", rows, lake, suite)


def write_blimp_pairs(lake: Path, suite: str, rows: dict[str, list]) -> Path:
    """lake/blimp_pairs/suite=<suite>/blimp_pairs.parquet from pair_index, uid, field,
    linguistics_term, pair_id, sentence_good, sentence_bad, n_tokens_good, n_tokens_bad."""
    return _write_table("blimp_pairs", rows, lake, suite)


def make_manifest(
    suite: str,
    size: str,
    step: int,
    *,
    n_params: int,
    seeds: list[int],
    n_token_stats: int,
    n_pair_kl: int,
    n_icl_scores: int | None = None,
    n_fingerprints: int | None = None,
    n_weight_stats: int | None = None,
    n_weight_sketches: int | None = None,
    n_loglik: int | None = None,
    n_blimp_scores: int | None = None,
    probe_set_hash: str | None = None,
    loglik_set_hash: str | None = None,
    weight_sketch_dim: int | None = None,
    blimp_set_hash: str | None = None,
    objective: str | None = None,
    seeds_missing: list[int] | None = None,
    final_step: int | None = None,
    eval_set: str = "brown-heldout",
    eval_set_hash: str = "sha256:synthetic",
    top_k: int = 2,
    device: str = "cpu",
    code_version: str = "test",
    created_at: str = "2025-06-01T12:00:00+00:00",
) -> dict:
    """A manifest.json body with every key the contract lists. The keys added later appear only
    when given, as in manifests written before they existed: rows.icl_scores (before ICL);
    rows.fingerprints / weight_stats / weight_sketches / loglik and the top-level
    probe_set_hash, loglik_set_hash, weight_sketch_dim (before fingerprints, weight statistics
    and log-likelihood vectors); rows.blimp_scores, blimp_set_hash and objective (before BLiMP
    and masked suites; a masked suite's manifest has objective but no BLiMP keys); n_pairs,
    seeds_missing and missing_checkpoints (before a partition could go without a seed);
    final_step (before suites said which step is final)."""
    rows = {"token_stats": int(n_token_stats), "pair_kl": int(n_pair_kl)}
    for key, value in (
        ("icl_scores", n_icl_scores),
        ("fingerprints", n_fingerprints),
        ("weight_stats", n_weight_stats),
        ("weight_sketches", n_weight_sketches),
        ("loglik", n_loglik),
        ("blimp_scores", n_blimp_scores),
    ):
        if value is not None:
            rows[key] = int(value)
    extra: dict = {}
    if objective is not None:
        extra["objective"] = objective
    if blimp_set_hash is not None:
        extra["blimp_set_hash"] = blimp_set_hash
    if probe_set_hash is not None:
        extra["probe_set_hash"] = probe_set_hash
    if loglik_set_hash is not None:
        extra["loglik_set_hash"] = loglik_set_hash
    if weight_sketch_dim is not None:
        extra["weight_sketch_dim"] = int(weight_sketch_dim)
    if final_step is not None:
        extra["final_step"] = int(final_step)
    if seeds_missing is not None:
        extra["n_pairs"] = len(seeds) * (len(seeds) - 1)
        extra["seeds_missing"] = [int(s) for s in seeds_missing]
        extra["missing_checkpoints"] = [
            {"seed": int(s), "source": f"synthetic/{size}-seed{s}/step{step}", "reason": "never published"}
            for s in seeds_missing
        ]
    return {
        "suite": suite,
        "size": size,
        "step": int(step),
        "n_params": int(n_params),
        "seeds": [int(s) for s in seeds],
        "eval_set": eval_set,
        "eval_set_hash": eval_set_hash,
        "top_k": int(top_k),
        "device": device,
        "code_version": code_version,
        "created_at": created_at,
        "rows": rows,
        "timings_s": {"load": 0.5, "forward": 1.25, "write": 0.125},
        "checkpoints": [
            {"seed": int(s), "source": f"synthetic/{size}-seed{s}/step{step}", "weights": f"sha256:{s:064x}"}
            for s in seeds
        ],
        **extra,
    }


def write_checkpoint(
    lake: Path,
    suite: str,
    size: str,
    step: int,
    *,
    token_stats: dict[str, list],
    pair_kl: dict[str, list],
    manifest: dict | None,
    icl_scores: dict[str, list] | None = None,
    fingerprints: dict[str, list] | None = None,
    weight_stats: dict[str, list] | None = None,
    weight_sketches: dict[str, list] | None = None,
    loglik: dict[str, list] | None = None,
    blimp_scores: dict[str, list] | None = None,
) -> Path:
    """One checkpoint partition: token_stats.parquet, pair_kl.parquet; icl_scores.parquet,
    fingerprints.parquet, weight_stats.parquet, weight_sketches.parquet, loglik.parquet and
    blimp_scores.parquet when given; and, when given, manifest.json.

    manifest=None leaves the partition incomplete, as a crashed or running extract would.
    """
    directory = partition_dir(lake, suite, size, step)
    for name, rows in (
        ("token_stats", token_stats),
        ("pair_kl", pair_kl),
        ("icl_scores", icl_scores),
        ("fingerprints", fingerprints),
        ("weight_stats", weight_stats),
        ("weight_sketches", weight_sketches),
        ("loglik", loglik),
        ("blimp_scores", blimp_scores),
    ):
        if rows is not None:
            _write_table(name, rows, lake, suite, size, int(step))
    if manifest is not None:
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory


# --- The synthetic lake -------------------------------------------------------------------------

SUITE = "mini"
SIZES = {"tiny": 12_345, "base": 98_765}  # name order is not n_params order on purpose
STEPS = (1, 512)
SEEDS = (1, 2, 3)
N_POSITIONS = 6

# KL(p_a || p_b) = scale * (PAIR_BASE[a, b] + POSITION_OFFSET[pos] + 1/16 * ((a + 2b + pos) % 3))
PAIR_BASE = {(1, 2): 0.25, (2, 1): 0.5, (1, 3): 0.75, (3, 1): 1.0, (2, 3): 1.25, (3, 2): 1.5}
POSITION_OFFSET = (0.0, 0.125, 0.5, 0.25, 1.0, 0.0625)
PARTITION_SCALE = {("tiny", 1): 2.0, ("tiny", 512): 0.5, ("base", 1): 1.0, ("base", 512): 0.25}

# surprisal = scale * (SEED_CE[seed] + POSITION_CE[pos])
SEED_CE = {1: 2.0, 2: 2.5, 3: 3.25}
POSITION_CE = (0.5, 1.0, 0.25, 2.0, 0.75, 1.5)

# A partition with data but no manifest: its rows must never reach the warehouse.
INCOMPLETE = ("tiny", 2)
INCOMPLETE_KL = 7.0


@dataclass
class SyntheticLake:
    """What write_synthetic_lake wrote, as arrays a test can aggregate with numpy.

    kl[(size, step)]: float64 [n_seeds, n_seeds, n_positions], NaN on the diagonal (a == b).
    token_stats[(size, step)][column]: float64 [n_seeds, n_positions].
    """

    root: Path
    suite: str = SUITE
    sizes: dict[str, int] = field(default_factory=lambda: dict(SIZES))
    steps: tuple[int, ...] = STEPS
    seeds: tuple[int, ...] = SEEDS
    positions: tuple[int, ...] = tuple(range(N_POSITIONS))
    kl: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    token_stats: dict[tuple[str, int], dict[str, np.ndarray]] = field(default_factory=dict)
    incomplete: tuple[str, int] = INCOMPLETE

    @property
    def partitions(self) -> list[tuple[str, int]]:
        return [(size, step) for size in self.sizes for step in self.steps]


def _kl_array(scale: float) -> np.ndarray:
    n = len(SEEDS)
    kl = np.full((n, n, N_POSITIONS), np.nan)
    for (i, a), (j, b) in itertools.product(enumerate(SEEDS), repeat=2):
        if a == b:
            continue
        for pos in range(N_POSITIONS):
            interaction = 0.0625 * ((a + 2 * b + pos) % 3)
            kl[i, j, pos] = scale * (PAIR_BASE[a, b] + POSITION_OFFSET[pos] + interaction)
    return kl


def _token_stats_arrays(scale: float) -> dict[str, np.ndarray]:
    surprisal = np.array([[scale * (SEED_CE[s] + POSITION_CE[p]) for p in range(N_POSITIONS)] for s in SEEDS])
    entropy = 0.5 * surprisal + 0.125
    kl_unigram = np.array([[0.25 * s + 0.125 * p * scale for p in range(N_POSITIONS)] for s in SEEDS])
    tail_mass = np.array([[0.0625 * ((s + p) % 4) for p in range(N_POSITIONS)] for s in SEEDS])
    return {
        "surprisal": surprisal,
        "entropy": entropy,
        "kl_uniform": 8.0 - entropy,
        "kl_unigram": kl_unigram,
        "tail_mass": tail_mass,
    }


def pair_kl_rows(kl: np.ndarray, seeds: tuple[int, ...] = SEEDS) -> dict[str, list]:
    """pair_kl.parquet columns from a [n_seeds, n_seeds, n_positions] array (diagonal skipped)."""
    rows: dict[str, list] = {"seed_a": [], "seed_b": [], "position": [], "kl": []}
    for (i, a), (j, b) in itertools.product(enumerate(seeds), repeat=2):
        if a == b:
            continue
        for pos in range(kl.shape[2]):
            rows["seed_a"].append(a)
            rows["seed_b"].append(b)
            rows["position"].append(pos)
            rows["kl"].append(float(kl[i, j, pos]))
    return rows


def token_stats_rows(
    stats: dict[str, np.ndarray], seeds: tuple[int, ...] = SEEDS, top1_ids: np.ndarray | None = None
) -> dict[str, list]:
    """token_stats.parquet columns from [n_seeds, n_positions] arrays (top-k of size 2). Each
    seed's most probable token at position p is p unless `top1_ids` ([n_seeds, n_positions])
    says which; the second is the next id after it."""
    rows: dict[str, list] = {name: [] for name in TABLES["token_stats"].schema.names}
    for i, seed in enumerate(seeds):
        for pos in range(stats["surprisal"].shape[1]):
            rows["seed"].append(seed)
            rows["position"].append(pos)
            for name in ("surprisal", "entropy", "kl_uniform", "kl_unigram", "tail_mass"):
                rows[name].append(float(stats[name][i, pos]))
            top1 = pos if top1_ids is None else int(top1_ids[i, pos])
            rows["topk_ids"].append([top1, top1 + 1])
            rows["topk_logprobs"].append([-0.5, -1.5])
    return rows


def fingerprint_rows(
    fingerprints: np.ndarray, seeds: tuple[int, ...], n_tokens: list[int] | None = None
) -> dict[str, list]:
    """fingerprints.parquet columns from a [n_seeds, n_probes, hidden] array (probe_id = index)."""
    n_seeds, n_probes, _ = fingerprints.shape
    rows: dict[str, list] = {name: [] for name in TABLES["fingerprints"].schema.names}
    for i, seed in zip(range(n_seeds), seeds):
        for probe in range(n_probes):
            rows["seed"].append(int(seed))
            rows["probe_id"].append(probe)
            rows["n_tokens"].append(int(n_tokens[probe]) if n_tokens else 1)
            rows["fingerprint"].append([float(v) for v in fingerprints[i, probe]])
    return rows


def weight_sketch_rows(sketches: np.ndarray, seeds: tuple[int, ...]) -> dict[str, list]:
    """weight_sketches.parquet columns from a [n_seeds, dim] array."""
    return {
        "seed": [int(s) for s in seeds],
        "sketch": [[float(v) for v in sketches[i]] for i in range(len(seeds))],
    }


def loglik_rows(logprob: np.ndarray, seeds: tuple[int, ...], n_tokens: list[int] | None = None) -> dict[str, list]:
    """loglik.parquet columns from a [n_seeds, n_texts] array of log-probabilities (text_id = index)."""
    rows: dict[str, list] = {name: [] for name in TABLES["loglik"].schema.names}
    for i, seed in enumerate(seeds):
        for text_id in range(logprob.shape[1]):
            rows["seed"].append(int(seed))
            rows["text_id"].append(text_id)
            rows["logprob"].append(float(logprob[i, text_id]))
            rows["n_tokens"].append(int(n_tokens[text_id]) if n_tokens else 1)
    return rows


def blimp_scores_rows(logprob_good: np.ndarray, logprob_bad: np.ndarray, seeds: tuple[int, ...]) -> dict[str, list]:
    """blimp_scores.parquet columns from two [n_seeds, n_pairs] arrays of sentence log-probabilities
    (pair_index = column index)."""
    rows: dict[str, list] = {name: [] for name in TABLES["blimp_scores"].schema.names}
    for i, seed in enumerate(seeds):
        for pair_index in range(logprob_good.shape[1]):
            rows["seed"].append(int(seed))
            rows["pair_index"].append(pair_index)
            rows["logprob_good"].append(float(logprob_good[i, pair_index]))
            rows["logprob_bad"].append(float(logprob_bad[i, pair_index]))
    return rows


def write_synthetic_lake(lake: Path) -> SyntheticLake:
    """A complete small lake: 1 suite, 2 sizes x 2 steps x 3 seeds x 6 positions, plus one
    partition (INCOMPLETE) whose Parquet files exist but whose manifest does not."""
    lake = Path(lake)
    synth = SyntheticLake(root=lake)

    words = ["The", " jury", " said", " it", " did", " find"]
    write_one_document(lake, SUITE, words, [10 + p for p in range(N_POSITIONS)], window=N_POSITIONS)
    write_unigram(lake, SUITE, {10 + p: 3 + p for p in range(N_POSITIONS)} | {0: 0, 1: 2})

    for size, step in synth.partitions:
        scale = PARTITION_SCALE[size, step]
        kl = _kl_array(scale)
        stats = _token_stats_arrays(scale)
        synth.kl[size, step] = kl
        synth.token_stats[size, step] = stats
        ts_rows, pk_rows = token_stats_rows(stats), pair_kl_rows(kl)
        write_checkpoint(
            lake,
            SUITE,
            size,
            step,
            token_stats=ts_rows,
            pair_kl=pk_rows,
            manifest=make_manifest(
                SUITE,
                size,
                step,
                n_params=SIZES[size],
                seeds=list(SEEDS),
                n_token_stats=len(ts_rows["seed"]),
                n_pair_kl=len(pk_rows["kl"]),
            ),
        )

    size, step = INCOMPLETE
    write_checkpoint(
        lake,
        SUITE,
        size,
        step,
        token_stats=token_stats_rows(_token_stats_arrays(100.0)),
        pair_kl=pair_kl_rows(np.full((len(SEEDS), len(SEEDS), N_POSITIONS), INCOMPLETE_KL)),
        manifest=None,
    )
    return synth


def set_pair_kl(lake: Path, suite: str, size: str, step: int, row: int, kl: float) -> None:
    """Overwrite one row's kl in an existing partition's pair_kl.parquet (to break a lake)."""
    path = TABLES["pair_kl"].path(Path(lake), suite, size, int(step))
    rows = pq.read_table(path).to_pydict()
    rows["kl"][row] = kl
    _write(rows, TABLES["pair_kl"].schema, path)


# --- The analysis lake --------------------------------------------------------------------------
# A lake with every table the analysis marts read (token_pos, icl_scores), where token
# frequencies, tags and surprisals spread over several levels of every condition. Values are
# dyadic (k/64, k/16), so they survive float32 exactly; tests aggregate the arrays below with
# numpy and compare with the marts.

ANALYSIS_SIZES = {"small": 1_000, "large": 4_000}
ANALYSIS_STEPS = (0, 16, 128)
ANALYSIS_SEEDS = (1, 2, 3)
ANALYSIS_WINDOW = 12  # 4 windows of 12 tokens: prev_pos is NULL at positions 0, 12, 24, 36

# token id -> (text, occurrences in the evaluation set): 7 types occur at least 3 times (ranked
# by mart_token_rankings at the default ranking_min_count), 2 more than 9 times (bin 10–99).
ANALYSIS_TOKENS = {
    100: (" the", 12),
    101: (",", 10),
    102: (" of", 6),
    103: (".", 5),
    104: (" and", 4),
    105: (" jury", 3),
    106: (" said", 3),
    107: (" it", 2),
    108: (" Fulton", 1),
    109: (" county", 1),
    110: ("''", 1),
}
# Training-split counts (frequency_corpus: train): the decade edges the labels must get right;
# 107 and 108 never occur in training (frequency 0, bin "0").
ANALYSIS_UNIGRAM = {
    100: 12_345,
    101: 1_000,
    102: 100,
    103: 99,
    104: 10,
    105: 9,
    106: 1,
    109: 1_000_000,
    110: 2,
    7: 50,  # a type outside the evaluation set
}
# Tags drawn per token: Penn tags including the punctuation ones whose spelling a CSV loader
# could mangle, no tag (None), and "XX", which is not a Penn tag and must be dropped.
ANALYSIS_TAG_CHOICES = ("NN", "NN", "NN", "DT", "IN", ",", ".", "''", "``", "VB", "JJ", "PRP$", None, "XX")
ANALYSIS_ICL = {"short_context": 50, "long_context": 400, "target_position": 500, "n_sequences": 5}
ANALYSIS_INCOMPLETE = ("small", 256)  # later than every complete step: must not become the last step
# The step each size trains to, as its manifests say: small's is the incomplete partition (its final
# surprisal must wait for it), large's its last complete step.
ANALYSIS_FINAL_STEPS = {"small": ANALYSIS_INCOMPLETE[1], "large": 128}


@dataclass
class AnalysisLake:
    """What write_analysis_lake wrote.

    token_id / token_text / window_id / pos / prev_pos: per position (pos and prev_pos as the
    lake has them, "XX" included); kl[(size, step)]: [n_seeds, n_seeds, n_positions], NaN on the
    diagonal; surprisal[(size, step)]: [n_seeds, n_positions]; icl_short / icl_long[(size,
    step)]: [n_seeds, n_sequences].
    """

    root: Path
    suite: str = SUITE
    sizes: dict[str, int] = field(default_factory=lambda: dict(ANALYSIS_SIZES))
    steps: tuple[int, ...] = ANALYSIS_STEPS
    seeds: tuple[int, ...] = ANALYSIS_SEEDS
    token_id: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    token_text: list[str] = field(default_factory=list)
    window_id: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    pos: list[str | None] = field(default_factory=list)
    prev_pos: list[str | None] = field(default_factory=list)
    unigram: dict[int, int] = field(default_factory=lambda: dict(ANALYSIS_UNIGRAM))
    kl: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    surprisal: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    icl_short: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    icl_long: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    icl: dict[str, int] = field(default_factory=lambda: dict(ANALYSIS_ICL))
    incomplete: tuple[str, int] = ANALYSIS_INCOMPLETE
    final_steps: dict[str, int] = field(default_factory=lambda: dict(ANALYSIS_FINAL_STEPS))

    @property
    def n_positions(self) -> int:
        return len(self.token_id)

    @property
    def partitions(self) -> list[tuple[str, int]]:
        return [(size, step) for size in self.sizes for step in self.steps]


def icl_scores_rows(short: np.ndarray, long: np.ndarray, icl: dict[str, int], seeds=ANALYSIS_SEEDS) -> dict:
    """icl_scores.parquet columns from [n_seeds, n_sequences] surprisal arrays."""
    rows: dict[str, list] = {name: [] for name in TABLES["icl_scores"].schema.names}
    for i, seed in enumerate(seeds):
        for sequence_id in range(short.shape[1]):
            rows["seed"].append(seed)
            rows["sequence_id"].append(sequence_id)
            rows["short_context"].append(icl["short_context"])
            rows["long_context"].append(icl["long_context"])
            rows["target_position"].append(icl["target_position"])
            rows["surprisal_short"].append(float(short[i, sequence_id]))
            rows["surprisal_long"].append(float(long[i, sequence_id]))
    return rows


def _analysis_token_stats(surprisal: np.ndarray) -> dict[str, np.ndarray]:
    entropy = 0.5 * surprisal
    n_seeds, n_positions = surprisal.shape
    return {
        "surprisal": surprisal,
        "entropy": entropy,
        "kl_uniform": 16.0 - entropy,
        "kl_unigram": 0.25 * surprisal,
        "tail_mass": np.full((n_seeds, n_positions), 0.125),
    }


def write_analysis_lake(lake: Path, rng_seed: int = 7) -> AnalysisLake:
    """The analysis lake: 1 suite, 2 sizes x 3 steps x 3 seeds x 48 positions, with token_pos,
    unigram counts and ICL scores, plus one partition without a manifest (ANALYSIS_INCOMPLETE)."""
    lake = Path(lake)
    rng = np.random.default_rng(rng_seed)
    synth = AnalysisLake(root=lake)

    token_id = np.array([t for t, (_, count) in ANALYSIS_TOKENS.items() for _ in range(count)])
    token_id = rng.permutation(token_id)
    n = len(token_id)
    synth.token_id = token_id
    synth.token_text = [ANALYSIS_TOKENS[int(t)][0] for t in token_id]
    synth.window_id = np.arange(n) // ANALYSIS_WINDOW
    synth.pos = [ANALYSIS_TAG_CHOICES[i] for i in rng.integers(0, len(ANALYSIS_TAG_CHOICES), n)]
    synth.prev_pos = [
        None if p == 0 or synth.window_id[p] != synth.window_id[p - 1] else synth.pos[p - 1] for p in range(n)
    ]

    write_one_document(lake, synth.suite, synth.token_text, token_id.tolist(), window=ANALYSIS_WINDOW)
    write_unigram(lake, synth.suite, synth.unigram)
    write_token_pos(
        lake,
        synth.suite,
        {
            "eval_set": ["brown-heldout"] * n,
            "position": list(range(n)),
            "word": [None if p is None else t.strip() or t for p, t in zip(synth.pos, synth.token_text)],
            "pos": synth.pos,
            "prev_pos": synth.prev_pos,
        },
    )

    seeds = synth.seeds
    n_seeds = len(seeds)
    off_diagonal = ~np.eye(n_seeds, dtype=bool)
    # a per-position difficulty so that the final surprisal spreads over every log-spaced bin in
    # bits (1/32 to 19 bits), seeds differing by less than 1/64 nat
    base_surprisal = np.log(2) * 2 ** (rng.integers(-20, 18, n) / 4)
    icl = synth.icl
    for size, step in [*synth.partitions, synth.incomplete]:
        complete = (size, step) != synth.incomplete
        kl = np.full((n_seeds, n_seeds, n), np.nan)
        kl[off_diagonal] = rng.integers(1, 512, (n_seeds * (n_seeds - 1), n)) / 64
        surprisal = base_surprisal + rng.integers(0, 16, (n_seeds, n)) / 1024
        short = rng.integers(32, 128, (n_seeds, icl["n_sequences"])) / 16
        long = rng.integers(0, 96, (n_seeds, icl["n_sequences"])) / 16
        if not complete:
            kl, surprisal, short, long = kl + 100.0, surprisal + 100.0, short + 100.0, long
        ts_rows = token_stats_rows(_analysis_token_stats(surprisal), seeds)
        pk_rows = pair_kl_rows(kl, seeds)
        icl_rows = icl_scores_rows(short, long, icl, seeds)
        manifest = None
        if complete:
            synth.kl[size, step] = kl
            synth.surprisal[size, step] = surprisal
            synth.icl_short[size, step] = short
            synth.icl_long[size, step] = long
            manifest = make_manifest(
                synth.suite,
                size,
                step,
                n_params=synth.sizes[size],
                seeds=list(seeds),
                n_token_stats=len(ts_rows["seed"]),
                n_pair_kl=len(pk_rows["kl"]),
                n_icl_scores=len(icl_rows["seed"]),
                final_step=synth.final_steps[size],
            )
        write_checkpoint(
            lake,
            synth.suite,
            size,
            step,
            token_stats=ts_rows,
            pair_kl=pk_rows,
            icl_scores=icl_rows,
            manifest=manifest,
        )
    return synth
