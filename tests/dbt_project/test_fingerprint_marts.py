"""The fingerprint, weight and log-likelihood marts (McEntire 2026; Kishino et al. 2026) over a small
synthetic lake whose values are chosen: fingerprints whose consecutive cosine similarities are
set by construction (each seed's fingerprint turns in a plane by a chosen angle per step), one
seed identical to another (cross-seed similarity 1), weight sketches, exact weight distances and
log-likelihood vectors drawn as dyadic fractions. Every mart is compared with the same numbers
computed here with numpy from the arrays the lake was written from.

Also: the regime thresholds at their boundaries through the real macro (`dbt show`), with the
default and with moved dbt vars; a lake written before these tables existed builds with the new
marts empty; a lake whose new tables disagree with their manifests fails the build on the data
tests. One dbt build per lake (module-scoped fixtures), as tests/helpers/dbt.py runs dbt.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.dbt import built_warehouse, run_dbt, run_results, statuses_by_test_name
from tests.helpers.lakes import (
    fingerprint_rows,
    loglik_rows,
    make_manifest,
    pair_kl_rows,
    partition_dir,
    token_stats_rows,
    weight_sketch_rows,
    write_checkpoint,
    write_fingerprint_probes,
    write_loglik_texts,
    write_one_document,
    write_synthetic_lake,
    write_unigram,
)

SUITE = "mini"
SIZES = {"small": 1_000, "large": 4_000}
SEEDS = (1, 2, 3)
N_PROBES, HIDDEN = 3, 4
SKETCH_DIM = 16
PARAM_GROUPS = ("embedding", "attention", "mlp", "norm", "head", "all")
CHAOTIC_BELOW, STABLE_FROM = 0.9, 0.99  # dbt_project.yml defaults

# Steps of each size; OLD partitions were written before fingerprints, weight statistics and
# log-likelihoods: token_stats and pair_kl only, and a manifest without the new keys.
STEPS = {"small": (0, 1, 2, 4, 8, 16), "large": (0, 1, 2, 4)}
OLD = {("large", 0)}
# The cosine similarity of each seed's fingerprint to its previous fingerprinted checkpoint,
# per fingerprinted step after the first. In `small`, seed 3's fingerprints are seed 1's.
CONSECUTIVE_COSINE = {
    ("small", 1): (0.5, 0.95, 0.995, 0.999, 0.9995),
    ("small", 2): (0.5, 0.995, 0.5, 0.995, 0.999),  # visits stable at step 2, leaves, stays from 8
    ("small", 3): (0.5, 0.95, 0.995, 0.999, 0.9995),
    ("large", 1): (0.3, 0.97),
    ("large", 2): (0.95, 0.999),
    ("large", 3): (0.95, 0.999),
}
IDENTICAL_SEEDS = {"small": (1, 3)}  # (seed, copy)
# In `large`, seed 2's fingerprints are seed 3's turned by one orthogonal map of the hidden space:
# the same consecutive cosines, a cross-seed cosine below 1, and a linear CKA of exactly 1.
ROTATED_SEEDS = {"large": (3, 2)}  # (seed, rotated copy)
# A partition whose log-likelihoods score another text set: never paired across steps.
OTHER_TEXT_SET = ("small", 16)

PROBES = ["The jury said", "37 + 45 = 82", "Paris is in France"]
# Texts with multi-byte characters: n_bytes is UTF-8 bytes, not characters.
LOGLIK_TEXTS = ["The café was open.", "Naïve jurors — all of them.", "It rained.", "Größe: 12 m²", "ok"]
# Evaluation tokens, also multi-byte: eval_bytes_per_token is (3 + 6 + 4 + 7) / 4 = 5.
EVAL_TOKENS = ["The", " café", " —", " naïve"]


@dataclass
class FingerprintLake:
    """What write_fingerprint_lake wrote, as numpy arrays (float32 values where the lake has float32).

    fingerprints[(size, step)]: [n_seeds, n_probes, hidden]; sketches[(size, step)]: [n_seeds,
    dim]; loglik[(size, step)]: [n_seeds, n_texts]; kl[(size, step)]: [n_seeds, n_seeds,
    n_positions] (NaN diagonal); surprisal[(size, step)]: [n_seeds, n_positions];
    weight_stats: one dict per lake row, with size and step.
    """

    root: Path
    fingerprints: dict = field(default_factory=dict)
    sketches: dict = field(default_factory=dict)
    loglik: dict = field(default_factory=dict)
    loglik_hash: dict = field(default_factory=dict)
    kl: dict = field(default_factory=dict)
    surprisal: dict = field(default_factory=dict)
    weight_stats: list = field(default_factory=list)
    text_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def partitions(self, new_only: bool = False) -> list[tuple[str, int]]:
        return [
            (size, step) for size, steps in STEPS.items() for step in steps if not (new_only and (size, step) in OLD)
        ]


def _turning_fingerprints(rng: np.random.Generator, cosines: tuple[float, ...]) -> np.ndarray:
    """[n_steps, n_probes, hidden]: unit vectors in a random plane, each turned from the one
    before by arccos(cosine), then scaled by a norm that varies (the cosine ignores it)."""
    basis, _ = np.linalg.qr(rng.normal(size=(N_PROBES * HIDDEN, 2)))
    angles = np.concatenate([[rng.uniform(0, 2 * np.pi)], np.arccos(cosines)]).cumsum()
    norms = rng.uniform(0.5, 4.0, len(angles))
    vectors = norms[:, None] * (np.cos(angles)[:, None] * basis[:, 0] + np.sin(angles)[:, None] * basis[:, 1])
    return vectors.reshape(len(angles), N_PROBES, HIDDEN).astype(np.float32)


def write_fingerprint_lake(lake: Path, rng_seed: int = 5) -> FingerprintLake:
    lake = Path(lake)
    rng = np.random.default_rng(rng_seed)
    synth = FingerprintLake(root=lake)
    n_positions = len(EVAL_TOKENS)

    write_one_document(lake, SUITE, EVAL_TOKENS, [20 + p for p in range(n_positions)], window=n_positions)
    write_unigram(lake, SUITE, {20 + p: 5 + p for p in range(n_positions)})
    write_fingerprint_probes(
        lake,
        SUITE,
        {
            "probe_id": list(range(N_PROBES)),
            "kind": ["corpus", "arithmetic", "factual"],
            "text": PROBES,
            "n_tokens": [3, 9, 4],
        },
    )
    synth.text_bytes = np.array([len(t.encode("utf-8")) for t in LOGLIK_TEXTS], dtype=float)
    write_loglik_texts(
        lake,
        SUITE,
        {
            "text_id": list(range(len(LOGLIK_TEXTS))),
            "doc_id": ["cb01"] * len(LOGLIK_TEXTS),
            "text": LOGLIK_TEXTS,
            "n_bytes": synth.text_bytes.astype(int).tolist(),
            "n_tokens": [len(t.split()) + 1 for t in LOGLIK_TEXTS],
        },
    )

    # fingerprints of every seed over the size's fingerprinted steps
    turning = {}
    for size, steps in STEPS.items():
        new_steps = [s for s in steps if (size, s) not in OLD]
        for seed in SEEDS:
            turning[size, seed] = _turning_fingerprints(rng, CONSECUTIVE_COSINE[size, seed])
            assert len(turning[size, seed]) == len(new_steps)
        for seed, copy in [IDENTICAL_SEEDS[size]] if size in IDENTICAL_SEEDS else []:
            assert CONSECUTIVE_COSINE[size, seed] == CONSECUTIVE_COSINE[size, copy]
            turning[size, copy] = turning[size, seed].copy()
        for seed, copy in [ROTATED_SEEDS[size]] if size in ROTATED_SEEDS else []:
            assert CONSECUTIVE_COSINE[size, seed] == CONSECUTIVE_COSINE[size, copy]
            rotation, _ = np.linalg.qr(rng.normal(size=(HIDDEN, HIDDEN)))
            turning[size, copy] = (turning[size, seed].astype(np.float64) @ rotation).astype(np.float32)

    text_base = -rng.integers(64, 1024, len(LOGLIK_TEXTS)) / 4
    for size, steps in STEPS.items():
        new_steps = [s for s in steps if (size, s) not in OLD]
        init = rng.integers(-32, 32, (len(SEEDS), SKETCH_DIM)) / 16  # step 0 sketch per seed
        for step in steps:
            kl = np.full((len(SEEDS), len(SEEDS), n_positions), np.nan)
            kl[~np.eye(len(SEEDS), dtype=bool)] = (
                rng.integers(1, 256, (len(SEEDS) * (len(SEEDS) - 1), n_positions)) / 64
            )
            surprisal = rng.integers(16, 256, (len(SEEDS), n_positions)) / 32
            stats = {
                "surprisal": surprisal,
                "entropy": 0.5 * surprisal,
                "kl_uniform": 8.0 - 0.5 * surprisal,
                "kl_unigram": 0.25 * surprisal,
                "tail_mass": np.full(surprisal.shape, 0.125),
            }
            synth.kl[size, step], synth.surprisal[size, step] = kl, surprisal
            ts_rows, pk_rows = token_stats_rows(stats, SEEDS), pair_kl_rows(kl, SEEDS)
            counts = {"n_token_stats": len(ts_rows["seed"]), "n_pair_kl": len(pk_rows["kl"])}
            if (size, step) in OLD:
                manifest = make_manifest(SUITE, size, step, n_params=SIZES[size], seeds=list(SEEDS), **counts)
                write_checkpoint(lake, SUITE, size, step, token_stats=ts_rows, pair_kl=pk_rows, manifest=manifest)
                continue

            index = new_steps.index(step)
            fingerprints = np.stack([turning[size, seed][index] for seed in SEEDS])
            sketches = (init + step * rng.integers(-8, 8, (len(SEEDS), SKETCH_DIM)) / 64).astype(np.float32)
            loglik = text_base * (1 + 4 / (step + 1)) + rng.integers(-64, 64, (len(SEEDS), len(LOGLIK_TEXTS))) / 32
            synth.fingerprints[size, step] = fingerprints
            synth.sketches[size, step] = sketches
            synth.loglik[size, step] = loglik
            synth.loglik_hash[size, step] = "sha256:texts-v2" if (size, step) == OTHER_TEXT_SET else "sha256:texts-v1"

            position = steps.index(step)
            prev_step = steps[position - 1] if position > 0 else None
            ws_rows: dict[str, list] = {
                k: []
                for k in ("seed", "param_group", "n_params", "l2_norm", "prev_step", "sq_dist_prev", "sq_dist_init")
            }
            for seed in SEEDS:
                for group_index, group in enumerate(PARAM_GROUPS):
                    row = {
                        "seed": seed,
                        "param_group": group,
                        "n_params": SIZES[size] if group == "all" else 100 * (group_index + 1),
                        "l2_norm": step + seed / 4 + group_index / 8,
                        "prev_step": prev_step,
                        # exact distances that are not the sketches': the mart must take them from here
                        "sq_dist_prev": None if prev_step is None else float(rng.integers(1, 512)) / 8,
                        "sq_dist_init": 0.0 if step == 0 else float(rng.integers(1, 512)) / 8,
                    }
                    for key, value in row.items():
                        ws_rows[key].append(value)
                    synth.weight_stats.append({"size": size, "step": step, **row})

            fp_rows = fingerprint_rows(fingerprints, SEEDS, n_tokens=[3, 9, 4])
            sk_rows = weight_sketch_rows(sketches, SEEDS)
            ll_rows = loglik_rows(loglik, SEEDS)
            manifest = make_manifest(
                SUITE,
                size,
                step,
                n_params=SIZES[size],
                seeds=list(SEEDS),
                **counts,
                n_fingerprints=len(fp_rows["seed"]),
                n_weight_stats=len(ws_rows["seed"]),
                n_weight_sketches=len(sk_rows["seed"]),
                n_loglik=len(ll_rows["seed"]),
                probe_set_hash="sha256:probes-v1",
                loglik_set_hash=synth.loglik_hash[size, step],
                weight_sketch_dim=SKETCH_DIM,
            )
            write_checkpoint(
                lake,
                SUITE,
                size,
                step,
                token_stats=ts_rows,
                pair_kl=pk_rows,
                manifest=manifest,
                fingerprints=fp_rows,
                weight_stats=ws_rows,
                weight_sketches=sk_rows,
                loglik=ll_rows,
            )
    return synth


# --- the hand computation -----------------------------------------------------------------------


def cosine(f: np.ndarray, g: np.ndarray) -> float:
    """Cosine of two fingerprints as concatenated vectors, in float64."""
    f, g = f.astype(np.float64).ravel(), g.astype(np.float64).ravel()
    return float(f @ g / np.sqrt((f @ f) * (g @ g)))


def linear_cka(f: np.ndarray, g: np.ndarray) -> float:
    """Linear CKA of two [n_probes, hidden] fingerprints, from the features centred over probes."""
    x = f.astype(np.float64) - f.astype(np.float64).mean(axis=0)
    y = g.astype(np.float64) - g.astype(np.float64).mean(axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def regime(similarity: float | None, chaotic_below: float = CHAOTIC_BELOW, stable_from: float = STABLE_FROM):
    if similarity is None:
        return None
    if similarity < chaotic_below:
        return "chaotic"
    return "stable" if similarity >= stable_from else "transition"


def fingerprinted_steps(synth: FingerprintLake, size: str) -> list[int]:
    return sorted(step for s, step in synth.fingerprints if s == size)


def expected_similarity(synth: FingerprintLake) -> dict[tuple[str, int, int], dict]:
    """(size, step, seed) -> prev_step, similarity_prev, regime."""
    expected = {}
    for size in STEPS:
        steps = fingerprinted_steps(synth, size)
        for i, seed in enumerate(SEEDS):
            for k, step in enumerate(steps):
                if k == 0:
                    expected[size, step, seed] = {"prev_step": None, "similarity_prev": None, "regime": None}
                    continue
                prev = steps[k - 1]
                sim = cosine(synth.fingerprints[size, step][i], synth.fingerprints[size, prev][i])
                expected[size, step, seed] = {"prev_step": prev, "similarity_prev": sim, "regime": regime(sim)}
    return expected


def _rows(con, sql: str, params=None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _columns(con, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"describe {table}").fetchall()]


def _approx_or_none(value, **kwargs):
    return None if value is None else pytest.approx(value, **kwargs)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fingerprint lake, built once by `dbt build`; yields (synth, connection, workdir)."""
    workdir = tmp_path_factory.mktemp("dbt_fingerprints")
    synth = write_fingerprint_lake(workdir / "lake")
    with built_warehouse(workdir, synth.root) as con:
        yield synth, con, workdir


NEW_MARTS = (
    "mart_fingerprint_similarity",
    "mart_fingerprint_cross_seed",
    "mart_regime_entry",
    "mart_regime_agreement",
    "mart_weight_stats",
    "mart_weight_distances",
    "mart_loglik_kl",
    "mart_loglik_size_kl",
    "mart_loglik_vs_exact",
)
MART_COLUMNS = {
    "mart_fingerprint_similarity": [
        "suite", "size", "step", "seed", "n_params", "prev_step", "similarity_prev", "regime",
    ],
    "mart_fingerprint_cross_seed": [
        "suite", "size", "step", "n_params", "n_seeds", "n_pairs", "mean_similarity", "min_similarity",
        "mean_cka", "min_cka", "n_regimes", "modal_regime_share", "all_seeds_agree",
    ],
    "mart_regime_entry": [
        "suite", "size", "n_params", "regime", "n_seeds", "n_seeds_entered", "mean_first_step",
        "std_first_step", "min_first_step", "max_first_step", "n_seeds_settled", "mean_settled_step",
        "std_settled_step",
    ],
    "mart_regime_agreement": ["suite", "size", "n_params", "n_checkpoints", "share_all_agree"],
    "mart_weight_stats": [
        "suite", "size", "step", "seed", "n_params", "param_group", "group_n_params", "l2_norm", "prev_step",
        "sq_dist_prev", "sq_dist_init",
    ],
    "mart_weight_distances": ["suite", "size", "seed", "step_a", "step_b", "sq_dist_sketch", "sq_dist_exact"],
    "mart_loglik_kl": [
        "suite", "size", "pair_kind", "step_a", "seed_a", "step_b", "seed_b", "n_texts", "kl_nats_per_text",
        "mean_bytes_per_text", "kl_bits_per_byte",
    ],
    "mart_loglik_vs_exact": [
        "suite", "size", "step", "n_params", "seed_a", "seed_b", "kl_llv_bits_per_byte", "kl_exact_nats_per_token",
        "eval_bytes_per_token", "kl_exact_bits_per_byte", "ratio",
    ],
}  # fmt: skip


# --- the tests ----------------------------------------------------------------------------------


def test_build_passes_every_model_and_test(built):
    _, _, workdir = built
    statuses = run_results(workdir)
    bad = {k: v for k, v in statuses.items() if v not in ("success", "pass")}
    assert not bad, bad
    by_name = statuses_by_test_name(statuses)
    for name in (
        "assert_fingerprints_complete",
        "assert_weight_stats_complete",
        "assert_weight_sketches_complete",
        "assert_loglik_complete",
        "assert_manifest_matches_partition",
        "stg_fingerprints_probe_in_probe_set",
        "stg_loglik_text_in_text_set",
        "mart_fingerprint_similarity_in_range",
        "mart_fingerprint_cross_seed_in_range",
        "mart_weight_distances_nonnegative",
        "mart_loglik_kl_nonnegative",
        "mart_loglik_size_kl_nonnegative",
        "mart_loglik_vs_exact_nonnegative",
    ):
        assert by_name[name] == "pass", name
    for mart in NEW_MARTS:
        assert statuses[f"model.seedconv.{mart}"] == "success", mart


def test_marts_have_the_contract_columns(built):
    _, con, _ = built
    for mart, columns in MART_COLUMNS.items():
        assert _columns(con, mart) == columns, mart
    assert "cross_entropy_seed_cv" in _columns(con, "mart_model_stats")


def test_stg_checkpoints_reads_the_new_manifest_keys(built):
    synth, con, _ = built
    rows = {(r["size"], r["step"]): r for r in _rows(con, "select * from stg_checkpoints")}
    assert set(rows) == set(synth.partitions())
    for key, row in rows.items():
        if key in OLD:
            for column in (
                "fingerprints_rows", "weight_stats_rows", "weight_sketches_rows", "loglik_rows",
                "probe_set_hash", "loglik_set_hash", "weight_sketch_dim",
            ):  # fmt: skip
                assert row[column] is None, (key, column)
            continue
        assert row["fingerprints_rows"] == len(SEEDS) * N_PROBES
        assert row["weight_stats_rows"] == len(SEEDS) * len(PARAM_GROUPS)
        assert row["weight_sketches_rows"] == len(SEEDS)
        assert row["loglik_rows"] == len(SEEDS) * len(LOGLIK_TEXTS)
        assert row["probe_set_hash"] == "sha256:probes-v1"
        assert row["loglik_set_hash"] == synth.loglik_hash[key]
        assert row["weight_sketch_dim"] == SKETCH_DIM


def test_fingerprint_similarity_equals_hand_computation(built):
    synth, con, _ = built
    expected = expected_similarity(synth)
    rows = {(r["size"], r["step"], r["seed"]): r for r in _rows(con, "select * from mart_fingerprint_similarity")}
    assert set(rows) == set(expected)
    for key, want in expected.items():
        row = rows[key]
        assert row["suite"] == SUITE and row["n_params"] == SIZES[key[0]]
        assert row["prev_step"] == want["prev_step"], key
        assert row["similarity_prev"] == _approx_or_none(want["similarity_prev"], rel=1e-12, abs=1e-12), key
        assert row["regime"] == want["regime"], key


def test_fingerprint_similarity_is_the_chosen_cosine(built):
    """The similarities are the cosines the lake was built from (up to float32 storage), and
    those put the seeds in the regimes they were chosen for."""
    _, con, _ = built
    for (size, seed), cosines in CONSECUTIVE_COSINE.items():
        got = con.execute(
            "select similarity_prev, regime from mart_fingerprint_similarity "
            "where size = ? and seed = ? and prev_step is not null order by step",
            [size, seed],
        ).fetchall()
        assert [s for s, _ in got] == pytest.approx(list(cosines), abs=1e-6)
        assert [r for _, r in got] == [regime(c) for c in cosines]
    # the first fingerprinted checkpoint of `large` is step 1: step 0 was written before fingerprints
    first = con.execute(
        "select min(step) from mart_fingerprint_similarity where size = 'large' and prev_step is null"
    ).fetchone()[0]
    assert first == 1
    regimes = {r[0] for r in con.execute("select distinct regime from mart_fingerprint_similarity").fetchall()}
    assert regimes == {None, "chaotic", "transition", "stable"}


def test_fingerprint_cross_seed_equals_hand_computation(built):
    synth, con, _ = built
    similarity = expected_similarity(synth)
    rows = {(r["size"], r["step"]): r for r in _rows(con, "select * from mart_fingerprint_cross_seed")}
    assert set(rows) == set(synth.fingerprints)
    for (size, step), fingerprints in synth.fingerprints.items():
        row = rows[size, step]
        pairs = [cosine(fingerprints[i], fingerprints[j]) for i, j in itertools.combinations(range(len(SEEDS)), 2)]
        regimes = [similarity[size, step, seed]["regime"] for seed in SEEDS]
        present = [r for r in regimes if r is not None]
        assert row["n_params"] == SIZES[size]
        assert row["n_seeds"] == len(SEEDS)
        assert row["n_pairs"] == len(pairs) == 3
        assert row["mean_similarity"] == pytest.approx(np.mean(pairs), rel=1e-12, abs=1e-12)
        assert row["min_similarity"] == pytest.approx(min(pairs), rel=1e-12, abs=1e-12)
        ckas = [linear_cka(fingerprints[i], fingerprints[j]) for i, j in itertools.combinations(range(len(SEEDS)), 2)]
        assert row["mean_cka"] == pytest.approx(np.mean(ckas), rel=1e-9, abs=1e-12)
        assert row["min_cka"] == pytest.approx(min(ckas), rel=1e-9, abs=1e-12)
        assert row["n_regimes"] == len(set(present))
        if present:
            modal = max(present.count(r) for r in set(present))
            assert row["modal_regime_share"] == pytest.approx(modal / len(SEEDS))
            assert row["all_seeds_agree"] == (len(set(present)) == 1 and len(present) == len(SEEDS))
        else:
            assert row["modal_regime_share"] is None and row["all_seeds_agree"] is None


def test_identical_seeds_have_similarity_one(built):
    _, con, _ = built
    seed, copy = IDENTICAL_SEEDS["small"]
    values = [
        r[0]
        for r in con.execute(
            "select similarity from int_fingerprint_seed_pairs where size = 'small' and seed_a = ? and seed_b = ?",
            [seed, copy],
        ).fetchall()
    ]
    assert len(values) == len(STEPS["small"])
    assert values == pytest.approx([1.0] * len(values), abs=1e-12)
    # the maximum of every step's pairs, so never the minimum when the other seed differs
    maxima = con.execute(
        "select max(similarity) from int_fingerprint_seed_pairs where size = 'small' group by step"
    ).fetchall()
    assert [m for (m,) in maxima] == pytest.approx([1.0] * len(maxima), abs=1e-12)


def test_a_rotated_hidden_space_has_cka_one_but_not_cosine_one(built):
    _, con, _ = built
    seed, rotated = ROTATED_SEEDS["large"]
    rows = _rows(
        con,
        "select step, similarity, cka from int_fingerprint_seed_pairs where size = 'large' and seed_a = ? "
        "and seed_b = ? order by step",
        sorted([seed, rotated]),
    )
    assert len(rows) == len([s for s in STEPS["large"] if ("large", s) not in OLD])
    for row in rows:
        assert row["cka"] == pytest.approx(1.0, abs=1e-6)  # float32 fingerprints
        assert row["similarity"] < 0.999  # the raw cosine sees the rotation
    identical = _rows(
        con, "select cka from int_fingerprint_seed_pairs where size = 'small' and seed_a = 1 and seed_b = 3"
    )
    assert [r["cka"] for r in identical] == pytest.approx([1.0] * len(identical), abs=1e-9)


def test_regime_entry_equals_hand_computation(built):
    synth, con, _ = built
    similarity = expected_similarity(synth)
    first_steps: dict[tuple[str, str], list[int]] = {}
    for (size, step, seed), want in sorted(similarity.items(), key=lambda kv: kv[0][1]):
        if want["regime"] is not None:
            per_seed = first_steps.setdefault((size, want["regime"]), {})
            per_seed.setdefault(seed, step)
    # settled: the regime of each seed's last checkpoint, from the step after its last other regime
    settled: dict[tuple[str, str], dict[int, int]] = {}
    for size in STEPS:
        for seed in SEEDS:
            history = [(step, similarity[size, step, seed]["regime"]) for step in fingerprinted_steps(synth, size)]
            history = [(step, r) for step, r in history if r is not None]
            final = history[-1][1]
            last_other = max((step for step, r in history if r != final), default=-1)
            settled.setdefault((size, final), {})[seed] = min(step for step, r in history if step > last_other)
    entry_rows = _rows(con, "select * from int_regime_entry")
    assert {(r["size"], r["seed"], r["regime"]): r["first_step"] for r in entry_rows} == {
        (size, seed, regime_): step for (size, regime_), seeds in first_steps.items() for seed, step in seeds.items()
    }
    assert {(r["size"], r["seed"], r["regime"]): r["settled_step"] for r in entry_rows if r["settled_step"]} == {
        (size, seed, regime_): step for (size, regime_), seeds in settled.items() for seed, step in seeds.items()
    }
    rows = {(r["size"], r["regime"]): r for r in _rows(con, "select * from mart_regime_entry")}
    assert set(rows) == {(size, r) for size in STEPS for r in ("chaotic", "transition", "stable")}
    for (size, regime_), row in rows.items():
        steps = np.array(list(first_steps.get((size, regime_), {}).values()), dtype=float)
        assert row["n_params"] == SIZES[size] and row["n_seeds"] == len(SEEDS)
        assert row["n_seeds_entered"] == len(steps)
        if len(steps) == 0:
            assert row["mean_first_step"] is None and row["min_first_step"] is None
            continue
        assert row["mean_first_step"] == pytest.approx(steps.mean())
        assert row["std_first_step"] == _approx_or_none(steps.std(ddof=1) if len(steps) > 1 else None)
        assert row["min_first_step"] == steps.min() and row["max_first_step"] == steps.max()
        stays = np.array(list(settled.get((size, regime_), {}).values()), dtype=float)
        assert row["n_seeds_settled"] == len(stays)
        assert row["mean_settled_step"] == _approx_or_none(stays.mean() if len(stays) else None)
        assert row["std_settled_step"] == _approx_or_none(stays.std(ddof=1) if len(stays) > 1 else None)
    # by hand: in `small` every seed is chaotic first at step 1; seeds 1 and 3 turn stable at 4 and
    # stay, seed 2 visits stable at 2, is chaotic again at 4 and stable for good from 8
    assert rows["small", "chaotic"]["std_first_step"] == 0
    assert rows["small", "stable"]["mean_first_step"] == pytest.approx(10 / 3)
    assert rows["small", "stable"]["mean_settled_step"] == pytest.approx(16 / 3)
    assert rows["small", "stable"]["n_seeds_settled"] == 3 and rows["small", "chaotic"]["n_seeds_settled"] == 0
    # in `large` only seed 1 is ever chaotic: one seed, no spread
    assert rows["large", "chaotic"]["n_seeds_entered"] == 1 and rows["large", "chaotic"]["std_first_step"] is None


def test_regime_agreement_equals_hand_computation(built):
    synth, con, _ = built
    similarity = expected_similarity(synth)
    rows = {r["size"]: r for r in _rows(con, "select * from mart_regime_agreement")}
    assert set(rows) == set(STEPS)
    for size in STEPS:
        agree = []
        for step in fingerprinted_steps(synth, size):
            regimes = [similarity[size, step, seed]["regime"] for seed in SEEDS]
            if any(r is not None for r in regimes):
                agree.append(None not in regimes and len(set(regimes)) == 1)
        assert rows[size]["n_params"] == SIZES[size]
        assert rows[size]["n_checkpoints"] == len(agree)
        assert rows[size]["share_all_agree"] == pytest.approx(np.mean(agree))
    # by hand: `small` agrees at steps 1, 8 and 16 of 5; `large` at neither of its 2
    assert rows["small"]["share_all_agree"] == pytest.approx(3 / 5)
    assert rows["large"]["share_all_agree"] == 0


def test_weight_stats_are_the_lake_rows(built):
    synth, con, _ = built
    rows = {
        (r["size"], r["step"], r["seed"], r["param_group"]): r for r in _rows(con, "select * from mart_weight_stats")
    }
    assert len(rows) == len(synth.weight_stats)
    for want in synth.weight_stats:
        row = rows[want["size"], want["step"], want["seed"], want["param_group"]]
        assert row["suite"] == SUITE
        assert row["n_params"] == SIZES[want["size"]]
        assert row["group_n_params"] == want["n_params"]
        for column in ("l2_norm", "prev_step", "sq_dist_prev", "sq_dist_init"):
            assert row[column] == want[column], (want, column)


def test_weight_distances_equal_hand_computation(built):
    synth, con, _ = built
    exact = {(w["size"], w["step"], w["seed"]): w for w in synth.weight_stats if w["param_group"] == "all"}
    rows = {
        (r["size"], r["seed"], r["step_a"], r["step_b"]): r for r in _rows(con, "select * from mart_weight_distances")
    }
    expected_keys = set()
    for size in STEPS:
        steps = sorted(step for s, step in synth.sketches if s == size)
        for (i, seed), (step_a, step_b) in itertools.product(enumerate(SEEDS), itertools.combinations(steps, 2)):
            expected_keys.add((size, seed, step_a, step_b))
            row = rows[size, seed, step_a, step_b]
            sketch_a, sketch_b = (synth.sketches[size, step][i].astype(np.float64) for step in (step_a, step_b))
            diff = sketch_b - sketch_a
            assert row["sq_dist_sketch"] == pytest.approx(float(diff @ diff), rel=1e-12, abs=1e-12)
            b = exact[size, step_b, seed]
            if step_a == b["prev_step"]:
                want = b["sq_dist_prev"]
            elif step_a == 0:
                want = b["sq_dist_init"]
            else:
                want = None
            assert row["sq_dist_exact"] == want, (size, seed, step_a, step_b)
    assert set(rows) == expected_keys
    # every pair of the 6 steps of `small` and of the 3 of `large` with weight files (step 0 is old)
    assert len(rows) == len(SEEDS) * (math.comb(6, 2) + math.comb(3, 2))
    # `large` step 1's previous step is 0, which has no weight files: that distance has no pair
    assert not any(k[0] == "large" and k[2] == 0 for k in rows)


def test_loglik_kl_equals_hand_computation(built):
    synth, con, _ = built
    rows = {
        (r["size"], r["pair_kind"], r["step_a"], r["seed_a"], r["step_b"], r["seed_b"]): r
        for r in _rows(con, "select * from mart_loglik_kl")
    }
    mean_bytes = synth.text_bytes.mean()
    expected = {}
    for (size, step), loglik in synth.loglik.items():
        for i, j in itertools.combinations(range(len(SEEDS)), 2):
            expected[size, "seeds", step, SEEDS[i], step, SEEDS[j]] = np.var(loglik[i] - loglik[j]) / 2
    for size in STEPS:
        steps = sorted(step for s, step in synth.loglik if s == size)
        for step_a, step_b in itertools.combinations(steps, 2):
            if synth.loglik_hash[size, step_a] != synth.loglik_hash[size, step_b]:
                continue  # another text set: not comparable
            for i, seed in enumerate(SEEDS):
                diff = synth.loglik[size, step_a][i] - synth.loglik[size, step_b][i]
                expected[size, "steps", step_a, seed, step_b, seed] = np.var(diff) / 2
    assert set(rows) == set(expected)
    for key, kl in expected.items():
        row = rows[key]
        assert row["suite"] == SUITE
        assert row["n_texts"] == len(LOGLIK_TEXTS)
        assert row["kl_nats_per_text"] == pytest.approx(kl, rel=1e-12)
        assert row["mean_bytes_per_text"] == pytest.approx(mean_bytes)
        assert row["kl_bits_per_byte"] == pytest.approx(kl / (np.log(2) * mean_bytes), rel=1e-12)
    # the partition scored on another text set is paired with no other step
    size, step = OTHER_TEXT_SET
    assert not [k for k in rows if k[0] == size and k[1] == "steps" and step in (k[2], k[4])]
    assert [k for k in rows if k[0] == size and k[1] == "seeds" and k[2] == step]
    # multi-byte characters count as their UTF-8 bytes
    assert mean_bytes > np.mean([len(t) for t in LOGLIK_TEXTS])


def test_loglik_size_kl_equals_hand_computation(built):
    """Sizes small and large of one seed at one step (small first: fewer parameters), at the steps
    both have on the same text set; small's step 16 (another text set) pairs with nothing."""
    synth, con, _ = built
    rows = {
        (r["size_a"], r["size_b"], r["step"], r["seed"]): r for r in _rows(con, "select * from mart_loglik_size_kl")
    }
    expected = {}
    for step in sorted({s for z, s in synth.loglik if z == "small"} & {s for z, s in synth.loglik if z == "large"}):
        if synth.loglik_hash["small", step] != synth.loglik_hash["large", step]:
            continue
        for i, seed in enumerate(SEEDS):
            diff = synth.loglik["small", step][i] - synth.loglik["large", step][i]
            expected["small", "large", step, seed] = np.var(diff) / 2
    assert expected and set(rows) == set(expected)
    mean_bytes = synth.text_bytes.mean()
    for key, kl in expected.items():
        assert rows[key]["kl_nats_per_text"] == pytest.approx(kl, rel=1e-12)
        assert rows[key]["kl_bits_per_byte"] == pytest.approx(kl / (np.log(2) * mean_bytes), rel=1e-12)


def test_loglik_vs_exact_equals_hand_computation(built):
    synth, con, _ = built
    rows = {
        (r["size"], r["step"], r["seed_a"], r["seed_b"]): r for r in _rows(con, "select * from mart_loglik_vs_exact")
    }
    eval_bytes = np.mean([len(t.encode("utf-8")) for t in EVAL_TOKENS])
    assert eval_bytes == 5.0
    mean_bytes = synth.text_bytes.mean()
    expected_keys = set()
    for (size, step), loglik in synth.loglik.items():
        kl = synth.kl[size, step]
        for i, j in itertools.combinations(range(len(SEEDS)), 2):
            key = (size, step, SEEDS[i], SEEDS[j])
            expected_keys.add(key)
            row = rows[key]
            llv = np.var(loglik[i] - loglik[j]) / 2 / (np.log(2) * mean_bytes)
            exact_nats = ((kl[i, j] + kl[j, i]) / 2).mean()
            exact_bits = exact_nats / (np.log(2) * eval_bytes)
            assert row["n_params"] == SIZES[size]
            assert row["kl_llv_bits_per_byte"] == pytest.approx(llv, rel=1e-12)
            assert row["kl_exact_nats_per_token"] == pytest.approx(exact_nats, rel=1e-12)
            assert row["eval_bytes_per_token"] == pytest.approx(eval_bytes)
            assert row["kl_exact_bits_per_byte"] == pytest.approx(exact_bits, rel=1e-12)
            assert row["ratio"] == pytest.approx(llv / exact_bits, rel=1e-12)
    # only checkpoints with both estimates: the old partition has pair_kl but no log-likelihoods
    assert set(rows) == expected_keys
    assert ("large", 0) not in {(k[0], k[1]) for k in rows}


def test_model_stats_cross_entropy_cv(built):
    synth, con, _ = built
    rows = {(r["size"], r["step"]): r for r in _rows(con, "select * from mart_model_stats")}
    assert set(rows) == set(synth.partitions())
    for key, surprisal in synth.surprisal.items():
        per_seed = surprisal.mean(axis=1)
        assert rows[key]["cross_entropy_seed_cv"] == pytest.approx(per_seed.std(ddof=1) / per_seed.mean())
        assert rows[key]["cross_entropy_seed_cv"] == pytest.approx(
            rows[key]["cross_entropy_seed_std"] / rows[key]["cross_entropy"]
        )  # every seed has the same number of contexts, so the weighted mean is the plain one


# --- the regime thresholds, through the real macro ----------------------------------------------

BOUNDARY_SQL = "select s, {{ fingerprint_regime('s') }} as regime from (values {values}) t(s) order by s nulls last"


def _show(workdir: Path, lake: Path, values: list[str], variables: str | None = None):
    sql = BOUNDARY_SQL.replace("{values}", ", ".join(f"({v})" for v in values))
    args = ["--quiet", "show", "--output", "json", "--limit", "-1", "--inline", sql]
    if variables is not None:
        args += ["--vars", variables]
    return run_dbt(args, workdir, lake)


def _shown(proc) -> list[tuple]:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    start = proc.stdout.index("{")
    return [(r["s"], r["regime"]) for r in json.loads(proc.stdout[start:])["show"]]


def test_regime_thresholds_at_their_boundaries(tmp_path):
    values = ["0.8999::double", "0.9::double", "0.98999::double", "0.99::double", "null::double", "'nan'::double"]
    shown = _shown(_show(tmp_path, tmp_path / "lake", values))
    assert [r for _, r in shown] == ["chaotic", "transition", "transition", "stable", None, None]
    assert [s for s, _ in shown[:4]] == [0.8999, 0.9, 0.98999, 0.99]


def test_regime_thresholds_moved_by_vars(tmp_path):
    values = ["0.4999::double", "0.5::double", "0.74999::double", "0.75::double", "0.95::double"]
    shown = _shown(_show(tmp_path, tmp_path / "lake", values, "{regime_chaotic_below: 0.5, regime_stable_from: 0.75}"))
    assert [r for _, r in shown] == ["chaotic", "transition", "transition", "stable", "stable"]


def test_regime_thresholds_out_of_order_are_refused(tmp_path):
    proc = _show(
        tmp_path, tmp_path / "lake", ["0.5::double"], "{regime_chaotic_below: 0.995, regime_stable_from: 0.99}"
    )
    assert proc.returncode != 0
    assert "regime_chaotic_below (0.995) exceeds regime_stable_from (0.99)" in proc.stdout + proc.stderr
    proc = _show(tmp_path, tmp_path / "lake", ["0.5::double"], "{regime_stable_from: high}")
    assert proc.returncode != 0
    assert "regime_stable_from must be a finite number" in proc.stdout + proc.stderr


# --- a lake written before these tables ---------------------------------------------------------


@pytest.fixture(scope="module")
def old_lake_build(tmp_path_factory):
    """tests/helpers/lakes.write_synthetic_lake: no fingerprint, weight or loglik file anywhere,
    manifests without the new keys."""
    workdir = tmp_path_factory.mktemp("dbt_old_lake")
    synth = write_synthetic_lake(workdir / "lake")
    with built_warehouse(workdir, synth.root) as con:
        yield synth, con, workdir


def test_lake_without_the_new_tables_builds_with_empty_marts(old_lake_build):
    synth, con, workdir = old_lake_build
    for name in ("fingerprints", "weight_stats", "weight_sketches", "loglik"):
        assert not list(synth.root.glob(f"checkpoints/*/*/*/{name}.parquet")), name
    bad = {k: v for k, v in run_results(workdir).items() if v not in ("success", "pass")}
    assert not bad, bad
    for relation in (
        "stg_fingerprints", "stg_weight_stats", "stg_weight_sketches", "stg_loglik", "stg_fingerprint_probes",
        "stg_loglik_texts", "int_fingerprint_checkpoints", "int_fingerprint_similarity",
        "int_fingerprint_seed_pairs", "int_regime_entry", *NEW_MARTS,
    ):  # fmt: skip
        assert con.execute(f"select count(*) from {relation}").fetchone()[0] == 0, relation
    for mart, columns in MART_COLUMNS.items():
        assert _columns(con, mart) == columns, mart
    nulls = con.execute(
        "select count(*), count(fingerprints_rows), count(weight_stats_rows), count(weight_sketches_rows), "
        "count(loglik_rows), count(probe_set_hash), count(loglik_set_hash), count(weight_sketch_dim) "
        "from stg_checkpoints"
    ).fetchone()
    assert nulls == (len(synth.partitions), 0, 0, 0, 0, 0, 0, 0)
    # the old marts still have their rows, and the new column of mart_model_stats its values
    cv = con.execute("select count(*), count(cross_entropy_seed_cv) from mart_model_stats").fetchone()
    assert cv == (len(synth.partitions), len(synth.partitions))


# --- a lake whose new tables disagree with their manifests -------------------------------------


def test_bad_new_tables_fail_their_data_tests(tmp_path):
    """A lake broken four ways: each is caught by its data test, and none is a SQL error.
    Models and seeds are built first, then `dbt test` runs every test (a build would skip the
    tests downstream of the first failure)."""
    synth = write_fingerprint_lake(tmp_path / "lake")

    def rewrite(size: str, step: int, table: str, change) -> None:
        path = partition_dir(synth.root, SUITE, size, step) / f"{table}.parquet"
        schema = pq.read_schema(path)
        rows = pq.read_table(path).to_pydict()
        change(rows)
        pq.write_table(pa.Table.from_pydict(rows, schema=schema), path)

    def drop_first_row(rows):  # seed 1 loses probe 0: the manifest counts one row more
        for values in rows.values():
            del values[0]

    def shorten_first_sketch(rows):  # a sketch of another dimension than the manifest's
        rows["sketch"][0] = rows["sketch"][0][:-1]

    def nan_fingerprint(rows):  # a degenerate fingerprint: its similarities are NaN
        rows["fingerprint"][0] = [float("nan")] * HIDDEN

    def unknown_text(rows):  # a log-likelihood of a text the text set does not have
        rows["text_id"] = [99 if t == 4 else t for t in rows["text_id"]]

    rewrite("small", 2, "fingerprints", drop_first_row)
    rewrite("small", 4, "weight_sketches", shorten_first_sketch)
    rewrite("large", 4, "fingerprints", nan_fingerprint)
    rewrite("large", 2, "loglik", unknown_text)

    proc = run_dbt(["build", "--exclude-resource-type", "test"], tmp_path, synth.root)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    proc = run_dbt(["test"], tmp_path, synth.root)
    assert proc.returncode != 0, proc.stdout[-4000:]
    statuses = run_results(tmp_path)
    assert "error" not in statuses.values(), {k: v for k, v in statuses.items() if v == "error"}
    failed = {name for name, status in statuses_by_test_name(statuses).items() if status == "fail"}
    assert failed == {
        "assert_manifest_matches_partition",  # the fingerprint count and the sketch dimension
        "assert_fingerprints_complete",  # seed 1 lacks probe 0 at small/2
        "int_fingerprint_similarity_probes_match",  # so small/2 and small/4 compare 2 of 3 probes
        "mart_fingerprint_similarity_in_range",  # NaN
        "mart_fingerprint_similarity_defined_after_first",  # NaN has no regime
        "mart_fingerprint_cross_seed_in_range",  # NaN
        "stg_loglik_text_in_text_set",
    }
    with duckdb.connect(str(tmp_path / "seedconv.duckdb"), read_only=True) as con:
        got = con.execute(
            "select similarity_prev, regime from mart_fingerprint_similarity "
            "where size = 'large' and step = 4 and seed = 1"
        ).fetchone()
    assert math.isnan(got[0]) and got[1] is None  # never read as `stable`, though DuckDB sorts NaN above 1
