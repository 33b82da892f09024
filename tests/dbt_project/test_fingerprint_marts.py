"""The fingerprint, weight and log-likelihood marts (McEntire 2026; Kishino et al. 2026) over a small
synthetic lake whose values are chosen: fingerprints whose consecutive cosine similarities are
set by construction (each seed's fingerprint turns in a plane by a chosen angle per step), one
seed identical to another (cross-seed similarity 1), weight sketches, exact weight distances and
log-likelihood vectors drawn as dyadic fractions. Every mart is compared with the same numbers
computed here with numpy from the arrays the lake was written from.

The lake is built with the suite's own regime settings (dbt var regime_suites): thresholds 0.9 and
0.99, far from the chosen cosines, and a step gap of 4, which sizes `small` and `mid` have
checkpoints for, so both measures of the regimes (fixed_gap, log_spaced) have rows. McEntire's
Tables 1, 3 and 4 are compared with the same arithmetic done here.

Also: the regime thresholds at their boundaries through the real macro (`dbt show`): strict on
both sides, with the defaults, with moved dbt vars and per suite; bad vars refused with errors
naming them; a lake written before these tables existed builds with the new marts empty; a lake
whose new tables disagree with their manifests fails the build on the data tests. One dbt build
per lake (module-scoped fixtures), as tests/helpers/dbt.py runs dbt.
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
SIZES = {"small": 1_000, "mid": 2_000, "large": 4_000}
SEEDS = (1, 2, 3)
N_PROBES, HIDDEN = 3, 4
SKETCH_DIM = 16
PARAM_GROUPS = ("embedding", "attention", "mlp", "norm", "head", "all")
TAU_LOW, TAU_HIGH = 0.997, 0.999  # dbt_project.yml defaults
GAP = 50
# The suite's own settings, which the lake is built with: every chosen cosine is far from 0.9 and
# 0.99 (stored as float32, they are only within 1e-7 of what was chosen), and `small` and `mid`
# have checkpoints 4 steps apart.
SUITE_TAU_LOW, SUITE_TAU_HIGH, SUITE_GAP = 0.9, 0.99, 4
BUILD_VARS = (
    f"{{regime_suites: {{{SUITE}: {{regime_tau_low: {SUITE_TAU_LOW}, regime_tau_high: {SUITE_TAU_HIGH}, "
    f"regime_gap: {SUITE_GAP}}}}}}}"
)

# Steps of each size; OLD partitions were written before fingerprints, weight statistics and
# log-likelihoods: token_stats and pair_kl only, and a manifest without the new keys.
# `mid` has checkpoints off the log-spaced schedule, as the mini suite's every 50 steps: with a
# gap of 4 it has two chains, 2-6 and 0-4-8-12-16, and 6 and 12 leave its log-spaced measure.
STEPS = {"small": (0, 1, 2, 4, 8, 16), "mid": (0, 1, 2, 4, 6, 8, 12, 16), "large": (0, 1, 2, 4)}
OLD = {("large", 0)}
# The cosine similarity of each seed's fingerprint to its previous fingerprinted checkpoint,
# per fingerprinted step after the first. In `small`, seed 3's fingerprints are seed 1's.
CONSECUTIVE_COSINE = {
    ("small", 1): (0.5, 0.95, 0.995, 0.999, 0.9995),
    ("small", 2): (0.5, 0.995, 0.5, 0.995, 0.999),  # visits stable at step 2, leaves, stays from 8
    ("small", 3): (0.5, 0.95, 0.995, 0.999, 0.9995),
    ("mid", 1): (0.2, 0.9, 0.999, 0.995, 0.9995, 0.9999, 0.9999),
    ("mid", 2): (0.4, 0.99, 0.95, 0.999, 0.999, 0.9995, 0.9995),
    ("mid", 3): (0.6, 0.995, 0.9999, 0.98, 0.9999, 0.999, 0.9999),
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


def regime(similarity: float | None, tau_low: float = SUITE_TAU_LOW, tau_high: float = SUITE_TAU_HIGH):
    """McEntire's eq. 2, strict on both sides."""
    if similarity is None:
        return None
    if similarity > tau_high:
        return "stable"
    return "chaotic" if similarity < tau_low else "transition"


def fingerprinted_steps(synth: FingerprintLake, size: str) -> list[int]:
    return sorted(step for s, step in synth.fingerprints if s == size)


def measure_steps(steps: list[int], gap: int) -> dict[tuple[str, int], int | None]:
    """(comparison, step) -> the step it is compared with (None for a measure's first), for one
    seed's fingerprinted steps: fixed_gap takes every step with one gap before or after it and
    compares it with step - gap; log_spaced leaves out the steps fixed_gap compares unless 0 or a
    power of two, and compares each with the one before."""
    present = set(steps)
    compared: dict[tuple[str, int], int | None] = {}
    for step in steps:
        if step - gap in present or step + gap in present:
            compared["fixed_gap", step] = step - gap if step - gap in present else None
    on_schedule = [s for s in steps if s - gap not in present or s == 0 or s & (s - 1) == 0]
    for k, step in enumerate(on_schedule):
        compared["log_spaced", step] = on_schedule[k - 1] if k else None
    return compared


def expected_similarity(synth: FingerprintLake) -> dict[tuple[str, int, int, str], dict]:
    """(size, step, seed, comparison) -> prev_step, similarity_prev, regime."""
    expected = {}
    for size in STEPS:
        measures = measure_steps(fingerprinted_steps(synth, size), SUITE_GAP)
        for i, seed in enumerate(SEEDS):
            for (comparison, step), prev in measures.items():
                sim = (
                    None
                    if prev is None
                    else cosine(synth.fingerprints[size, step][i], synth.fingerprints[size, prev][i])
                )
                expected[size, step, seed, comparison] = {
                    "prev_step": prev,
                    "similarity_prev": sim,
                    "regime": regime(sim),
                }
    return expected


def by_measure(expected: dict) -> dict[tuple[str, str], dict[int, list[tuple[int, str | None, float | None]]]]:
    """(size, comparison) -> seed -> [(step, regime, similarity)] in step order."""
    grouped: dict = {}
    for (size, step, seed, comparison), want in sorted(expected.items(), key=lambda kv: kv[0][1]):
        grouped.setdefault((size, comparison), {}).setdefault(seed, []).append(
            (step, want["regime"], want["similarity_prev"])
        )
    return grouped


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
    with built_warehouse(workdir, synth.root, BUILD_VARS) as con:
        yield synth, con, workdir


NEW_MARTS = (
    "mart_fingerprint_similarity",
    "mart_fingerprint_cross_seed",
    "mart_regime_entry",
    "mart_regime_agreement",
    "mart_mcentire_table1_final_loss",
    "mart_mcentire_table3_regime_share",
    "mart_mcentire_table4_regime_similarity",
    "mart_weight_stats",
    "mart_weight_distances",
    "mart_loglik_kl",
    "mart_loglik_size_kl",
    "mart_loglik_vs_exact",
)
MART_COLUMNS = {
    "mart_fingerprint_similarity": [
        "suite", "size", "step", "seed", "comparison", "n_params", "prev_step", "similarity_prev", "regime",
        "tau_low", "tau_high",
    ],
    "mart_fingerprint_cross_seed": [
        "suite", "size", "step", "n_params", "n_seeds", "n_pairs", "mean_similarity", "min_similarity",
        "mean_cka", "min_cka",
    ],
    "mart_regime_entry": [
        "suite", "size", "n_params", "comparison", "gap", "regime", "n_seeds", "n_seeds_entered",
        "mean_first_step", "std_first_step", "min_first_step", "max_first_step", "n_seeds_settled",
        "mean_settled_step", "std_settled_step",
    ],
    "mart_regime_agreement": ["suite", "size", "comparison", "n_params", "gap", "n_checkpoints", "share_all_agree"],
    "mart_mcentire_table1_final_loss": [
        "suite", "size", "n_params", "step", "n_seeds", "mean_loss", "std_loss", "min_loss", "max_loss",
        "cv_percent",
    ],
    "mart_mcentire_table3_regime_share": [
        "suite", "size", "n_params", "comparison", "gap", "n_seeds", "n_checkpoints", "share_chaotic",
        "share_transition", "share_stable", "share_unclassified", "n_checkpoints_agree", "share_all_agree",
    ],
    "mart_mcentire_table4_regime_similarity": [
        "suite", "size", "n_params", "comparison", "gap", "regime", "n_seeds", "n_checkpoints",
        "mean_similarity", "seed_std_similarity",
    ],
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
        "mart_fingerprint_similarity_regime_follows_thresholds",
        "int_fingerprint_checkpoints_gap_kept",
        "int_regime_checkpoints_in_range",
        "mart_mcentire_table3_regime_share_sums_to_one",
        "mart_mcentire_table4_regime_similarity_in_range",
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
    rows = {
        (r["size"], r["step"], r["seed"], r["comparison"]): r
        for r in _rows(con, "select * from mart_fingerprint_similarity")
    }
    assert set(rows) == set(expected)
    for key, want in expected.items():
        row = rows[key]
        assert row["suite"] == SUITE and row["n_params"] == SIZES[key[0]]
        assert row["prev_step"] == want["prev_step"], key
        assert row["similarity_prev"] == _approx_or_none(want["similarity_prev"], rel=1e-12, abs=1e-12), key
        assert row["regime"] == want["regime"], key
        # the suite's own thresholds (regime_suites), not the defaults
        assert (row["tau_low"], row["tau_high"]) == (SUITE_TAU_LOW, SUITE_TAU_HIGH)
    assert {key[3] for key in rows} == {"fixed_gap", "log_spaced"}


def test_fixed_gap_compares_t_minus_gap_and_skips_checkpoints_without_one(built):
    """By hand, with the suite's gap of 4: `mid` (steps 0, 1, 2, 4, 6, 8, 12, 16) has two chains,
    2-6 and 0-4-8-12-16, so step 1 is left out and 0 and 2 are firsts; 6 and 12 are compared 4
    steps back and so leave the log-spaced measure, where 16 follows 8. `small` (0, 1, 2, 4, 8,
    16) has 0-4-8, and 16 has no checkpoint at 12 or 20; `large`'s step 0 has no fingerprints,
    so it has no fixed-gap row at all."""
    _, con, _ = built

    def compared(size: str, comparison: str) -> list[tuple[int, int | None]]:
        return [
            (step, prev)
            for step, prev in con.execute(
                "select step, prev_step from mart_fingerprint_similarity "
                "where size = ? and comparison = ? and seed = 1 order by step",
                [size, comparison],
            ).fetchall()
        ]

    assert compared("mid", "fixed_gap") == [(0, None), (2, None), (4, 0), (6, 2), (8, 4), (12, 8), (16, 12)]
    assert compared("mid", "log_spaced") == [(0, None), (1, 0), (2, 1), (4, 2), (8, 4), (16, 8)]
    assert compared("small", "fixed_gap") == [(0, None), (4, 0), (8, 4)]
    assert compared("small", "log_spaced") == [(0, None), (1, 0), (2, 1), (4, 2), (8, 4), (16, 8)]
    assert compared("large", "fixed_gap") == []
    assert compared("large", "log_spaced") == [(1, None), (2, 1), (4, 2)]


def test_fingerprint_similarity_is_the_chosen_cosine(built):
    """The log-spaced similarities of `small` and `large`, whose checkpoints are all on the
    log-spaced schedule, are the cosines the lake was built from (up to float32 storage), and
    those put the seeds in the regimes they were chosen for."""
    _, con, _ = built
    for (size, seed), cosines in CONSECUTIVE_COSINE.items():
        if size == "mid":
            continue  # 6 and 12 are off the schedule: 8 and 16 are compared across two turns
        got = con.execute(
            "select similarity_prev, regime from mart_fingerprint_similarity "
            "where size = ? and seed = ? and comparison = 'log_spaced' and prev_step is not null order by step",
            [size, seed],
        ).fetchall()
        assert [s for s, _ in got] == pytest.approx(list(cosines), abs=1e-6)
        assert [r for _, r in got] == [regime(c) for c in cosines]
    # the first fingerprinted checkpoint of `large` is step 1: step 0 was written before fingerprints
    first = con.execute(
        "select min(step) from mart_fingerprint_similarity where size = 'large' and prev_step is null"
        " and comparison = 'log_spaced'"
    ).fetchone()[0]
    assert first == 1
    regimes = {r[0] for r in con.execute("select distinct regime from mart_fingerprint_similarity").fetchall()}
    assert regimes == {None, "chaotic", "transition", "stable"}


def test_fingerprint_cross_seed_equals_hand_computation(built):
    synth, con, _ = built
    rows = {(r["size"], r["step"]): r for r in _rows(con, "select * from mart_fingerprint_cross_seed")}
    assert set(rows) == set(synth.fingerprints)
    for (size, step), fingerprints in synth.fingerprints.items():
        row = rows[size, step]
        pairs = [cosine(fingerprints[i], fingerprints[j]) for i, j in itertools.combinations(range(len(SEEDS)), 2)]
        assert row["n_params"] == SIZES[size]
        assert row["n_seeds"] == len(SEEDS)
        assert row["n_pairs"] == len(pairs) == 3
        assert row["mean_similarity"] == pytest.approx(np.mean(pairs), rel=1e-12, abs=1e-12)
        assert row["min_similarity"] == pytest.approx(min(pairs), rel=1e-12, abs=1e-12)
        ckas = [linear_cka(fingerprints[i], fingerprints[j]) for i, j in itertools.combinations(range(len(SEEDS)), 2)]
        assert row["mean_cka"] == pytest.approx(np.mean(ckas), rel=1e-9, abs=1e-12)
        assert row["min_cka"] == pytest.approx(min(ckas), rel=1e-9, abs=1e-12)


def test_regime_checkpoints_equal_hand_computation(built):
    synth, con, _ = built
    expected = expected_similarity(synth)
    rows = {(r["size"], r["comparison"], r["step"]): r for r in _rows(con, "select * from int_regime_checkpoints")}
    assert set(rows) == {(size, comparison, step) for size, step, _, comparison in expected}
    for (size, comparison, step), row in rows.items():
        regimes = [expected[size, step, seed, comparison]["regime"] for seed in SEEDS]
        present = [r for r in regimes if r is not None]
        assert row["n_seeds"] == len(SEEDS) and row["n_seeds_with_regime"] == len(present)
        assert row["gap"] == (SUITE_GAP if comparison == "fixed_gap" else None)
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
    """Table 2: per measure, each seed's first step in each regime, and their mean, sample
    standard deviation (the paper's ±) and range across seeds; and the step a seed settles from."""
    synth, con, _ = built
    histories = by_measure(expected_similarity(synth))
    first_steps: dict[tuple[str, str, str], dict[int, int]] = {}
    settled: dict[tuple[str, str, str], dict[int, int]] = {}
    for (size, comparison), seeds in histories.items():
        for seed, history in seeds.items():
            history = [(step, r) for step, r, _ in history if r is not None]
            for step, r in history:
                first_steps.setdefault((size, comparison, r), {}).setdefault(seed, step)
            # settled: the regime of the seed's last checkpoint, from the step after its last other regime
            final = history[-1][1]
            last_other = max((step for step, r in history if r != final), default=-1)
            settled.setdefault((size, comparison, final), {})[seed] = min(
                step for step, r in history if step > last_other
            )
    entry_rows = _rows(con, "select * from int_regime_entry")
    assert {(r["size"], r["comparison"], r["regime"], r["seed"]): r["first_step"] for r in entry_rows} == {
        (*key, seed): step for key, seeds in first_steps.items() for seed, step in seeds.items()
    }
    assert {
        (r["size"], r["comparison"], r["regime"], r["seed"]): r["settled_step"] for r in entry_rows if r["settled_step"]
    } == {(*key, seed): step for key, seeds in settled.items() for seed, step in seeds.items()}
    rows = {(r["size"], r["comparison"], r["regime"]): r for r in _rows(con, "select * from mart_regime_entry")}
    assert set(rows) == {(size, c, r) for size, c in histories for r in ("chaotic", "transition", "stable")}
    for (size, comparison, regime_), row in rows.items():
        steps = np.array(list(first_steps.get((size, comparison, regime_), {}).values()), dtype=float)
        assert row["n_params"] == SIZES[size] and row["n_seeds"] == len(SEEDS)
        assert row["gap"] == (SUITE_GAP if comparison == "fixed_gap" else None)
        assert row["n_seeds_entered"] == len(steps)
        if len(steps) == 0:
            assert row["mean_first_step"] is None and row["min_first_step"] is None
            continue
        assert row["mean_first_step"] == pytest.approx(steps.mean())
        assert row["std_first_step"] == _approx_or_none(steps.std(ddof=1) if len(steps) > 1 else None)
        assert row["min_first_step"] == steps.min() and row["max_first_step"] == steps.max()
        stays = np.array(list(settled.get((size, comparison, regime_), {}).values()), dtype=float)
        assert row["n_seeds_settled"] == len(stays)
        assert row["mean_settled_step"] == _approx_or_none(stays.mean() if len(stays) else None)
        assert row["std_settled_step"] == _approx_or_none(stays.std(ddof=1) if len(stays) > 1 else None)
    # by hand, log-spaced: in `small` every seed is chaotic first at step 1; seeds 1 and 3 turn
    # stable at 4 and stay, seed 2 visits stable at 2, is chaotic again at 4 and stable for good from 8
    log = {key[::2]: row for key, row in rows.items() if key[1] == "log_spaced"}
    assert log["small", "chaotic"]["std_first_step"] == 0
    assert log["small", "stable"]["mean_first_step"] == pytest.approx(10 / 3)
    assert log["small", "stable"]["mean_settled_step"] == pytest.approx(16 / 3)
    assert log["small", "stable"]["n_seeds_settled"] == 3 and log["small", "chaotic"]["n_seeds_settled"] == 0
    # in `large` only seed 1 is ever chaotic: one seed, no spread
    assert log["large", "chaotic"]["n_seeds_entered"] == 1 and log["large", "chaotic"]["std_first_step"] is None
    # `large` has no fixed-gap measure: no rows for it, not rows of seeds that never entered
    assert not [key for key in rows if key[0] == "large" and key[1] == "fixed_gap"]


def test_regime_agreement_equals_hand_computation(built):
    synth, con, _ = built
    expected = expected_similarity(synth)
    rows = {(r["size"], r["comparison"]): r for r in _rows(con, "select * from mart_regime_agreement")}
    assert set(rows) == {(size, comparison) for size, _, _, comparison in expected}
    for size, comparison in rows:
        agree = []
        steps = sorted({step for s, step, _, c in expected if (s, c) == (size, comparison)})
        for step in steps:
            regimes = [expected[size, step, seed, comparison]["regime"] for seed in SEEDS]
            if any(r is not None for r in regimes):
                agree.append(None not in regimes and len(set(regimes)) == 1)
        row = rows[size, comparison]
        assert row["n_params"] == SIZES[size]
        assert row["gap"] == (SUITE_GAP if comparison == "fixed_gap" else None)
        assert row["n_checkpoints"] == len(agree)
        assert row["share_all_agree"] == pytest.approx(np.mean(agree))
    # by hand, log-spaced: `small` agrees at steps 1, 8 and 16 of 5; `large` at neither of its 2
    assert rows["small", "log_spaced"]["share_all_agree"] == pytest.approx(3 / 5)
    assert rows["large", "log_spaced"]["share_all_agree"] == 0


# --- McEntire's Tables 1, 3 and 4 -----------------------------------------------------------------


def test_table1_final_loss_equals_hand_computation(built):
    """Per size: each seed's mean surprisal over the evaluation tokens at the size's last step,
    then their mean, sample standard deviation, range and CV in percent."""
    synth, con, _ = built
    rows = {r["size"]: r for r in _rows(con, "select * from mart_mcentire_table1_final_loss")}
    assert set(rows) == set(STEPS)
    for size, steps in STEPS.items():
        losses = synth.surprisal[size, steps[-1]].mean(axis=1)  # one per seed
        row = rows[size]
        assert (row["suite"], row["n_params"], row["step"], row["n_seeds"]) == (SUITE, SIZES[size], steps[-1], 3)
        assert row["mean_loss"] == pytest.approx(losses.mean(), rel=1e-12)
        assert row["std_loss"] == pytest.approx(losses.std(ddof=1), rel=1e-12)
        assert (row["min_loss"], row["max_loss"]) == pytest.approx((losses.min(), losses.max()), rel=1e-12)
        assert row["cv_percent"] == pytest.approx(100 * losses.std(ddof=1) / losses.mean(), rel=1e-12)


def test_table3_regime_share_equals_hand_computation(built):
    """Per measure: each seed's share of its checkpoints in each regime, the first (no regime)
    in the denominator as the paper's, then the mean across seeds; agreement over the same
    checkpoints."""
    synth, con, _ = built
    expected = expected_similarity(synth)
    histories = by_measure(expected)
    rows = {(r["size"], r["comparison"]): r for r in _rows(con, "select * from mart_mcentire_table3_regime_share")}
    assert set(rows) == set(histories)
    for (size, comparison), seeds in histories.items():
        row = rows[size, comparison]
        for regime_ in ("chaotic", "transition", "stable", None):
            shares = [np.mean([r == regime_ for _, r, _ in history]) for history in seeds.values()]
            column = f"share_{regime_}" if regime_ else "share_unclassified"
            assert row[column] == pytest.approx(np.mean(shares), rel=1e-12), (size, comparison, column)
        steps = [step for step, _, _ in seeds[SEEDS[0]]]
        agree = [
            len({expected[size, step, seed, comparison]["regime"] for seed in SEEDS} - {None}) == 1
            and all(expected[size, step, seed, comparison]["regime"] for seed in SEEDS)
            for step in steps
        ]
        assert (row["n_seeds"], row["n_checkpoints"], row["n_checkpoints_agree"]) == (3, len(steps), sum(agree))
        assert row["share_all_agree"] == pytest.approx(sum(agree) / len(steps))
        assert row["gap"] == (SUITE_GAP if comparison == "fixed_gap" else None)
    # by hand: `mid`'s fixed gap has 7 checkpoints of which two (0 and 2) have nothing 4 steps
    # before them, so 2/7 of each seed's are unclassified. `small`'s log-spaced measure has 6
    # checkpoints, its first unclassified: seeds 1 and 3 are chaotic at 1, transition at 2 and
    # stable at 4, 8, 16; seed 2 chaotic at 1 and 4, stable at 2, 8, 16. So chaotic (1 + 2 + 1)
    # / 18, transition 2 / 18, stable 9 / 18: 5/6 in all. The seeds agree at 1, 8 and 16: 3/6,
    # where mart_regime_agreement, which leaves the first out, has 3/5.
    assert rows["mid", "fixed_gap"]["share_unclassified"] == pytest.approx(2 / 7)
    small = rows["small", "log_spaced"]
    assert (small["share_chaotic"], small["share_transition"], small["share_stable"]) == pytest.approx(
        (2 / 9, 1 / 9, 1 / 2)
    )
    assert small["share_unclassified"] == pytest.approx(1 / 6)
    assert small["share_all_agree"] == pytest.approx(3 / 6)


def test_table4_regime_similarity_is_per_seed_then_averaged(built):
    synth, con, _ = built
    histories = by_measure(expected_similarity(synth))
    rows = {
        (r["size"], r["comparison"], r["regime"]): r
        for r in _rows(con, "select * from mart_mcentire_table4_regime_similarity")
    }
    assert set(rows) == {(size, c, r) for size, c in histories for r in ("chaotic", "transition", "stable")}
    differs_from_pooled = 0
    for (size, comparison, regime_), row in rows.items():
        per_seed = {
            seed: [sim for _, r, sim in history if r == regime_]
            for seed, history in histories[size, comparison].items()
        }
        means = [np.mean(sims) for sims in per_seed.values() if sims]
        assert row["n_seeds"] == len(means)
        assert row["n_checkpoints"] == sum(len(sims) for sims in per_seed.values())
        assert row["gap"] == (SUITE_GAP if comparison == "fixed_gap" else None)
        if not means:
            assert row["mean_similarity"] is None
            continue
        assert row["mean_similarity"] == pytest.approx(np.mean(means), rel=1e-12)
        assert row["seed_std_similarity"] == _approx_or_none(np.std(means, ddof=1) if len(means) > 1 else None)
        pooled = np.mean([sim for sims in per_seed.values() for sim in sims])
        differs_from_pooled += not np.isclose(pooled, np.mean(means), rtol=1e-9)
    # the lake has regimes some seeds visit more often than others, where the two means differ
    assert differs_from_pooled >= 1
    # by hand, `small`'s log-spaced measure: chaotic are seed 1's step 1, seed 2's 1 and 4 and
    # seed 3's 1, each at 0.5; stable are seeds 1 and 3's 0.995, 0.999 and 0.9995 (mean 0.997833)
    # and seed 2's 0.995, 0.995 and 0.999 (0.996333)
    assert rows["small", "log_spaced", "chaotic"]["mean_similarity"] == pytest.approx(0.5, abs=1e-6)
    assert rows["small", "log_spaced", "chaotic"]["n_checkpoints"] == 4
    assert rows["small", "log_spaced", "stable"]["mean_similarity"] == pytest.approx(
        (2 * (0.995 + 0.999 + 0.9995) / 3 + (0.995 + 0.995 + 0.999) / 3) / 3, abs=1e-6
    )


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
    # every pair of the 6 steps of `small`, the 8 of `mid` and the 3 of `large` with weight files (step 0 is old)
    assert len(rows) == len(SEEDS) * (math.comb(6, 2) + math.comb(8, 2) + math.comb(3, 2))
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
    """Every two sizes of one seed at one step (the smaller first: fewer parameters), at the steps
    both have on the same text set; small's step 16 (another text set) pairs with nothing."""
    synth, con, _ = built
    rows = {
        (r["size_a"], r["size_b"], r["step"], r["seed"]): r for r in _rows(con, "select * from mart_loglik_size_kl")
    }
    expected = {}
    for size_a, size_b in itertools.combinations(sorted(SIZES, key=SIZES.get), 2):
        steps_a = {s for z, s in synth.loglik if z == size_a}
        for step in sorted(steps_a & {s for z, s in synth.loglik if z == size_b}):
            if synth.loglik_hash[size_a, step] != synth.loglik_hash[size_b, step]:
                continue
            for i, seed in enumerate(SEEDS):
                diff = synth.loglik[size_a, step][i] - synth.loglik[size_b, step][i]
                expected[size_a, size_b, step, seed] = np.var(diff) / 2
    assert ("small", "large", 1, 1) in expected and set(rows) == set(expected)
    assert not [key for key in rows if key[0] == "small" and key[2] == OTHER_TEXT_SET[1]]
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

BOUNDARY_SQL = (
    "select suite, s, {{ fingerprint_regime('s') }} as regime, {{ regime_value('gap') }} as gap "
    "from (values {values}) t(suite, s)"
)


def _show(workdir: Path, lake: Path, values: list[tuple[str, str]], variables: str | None = None):
    """The real macro on (suite, similarity) rows, in the order given."""
    quoted = [(suite.replace("'", "''"), s) for suite, s in values]
    rows = ", ".join(f"('{suite}', {s})" for suite, s in quoted)
    sql = BOUNDARY_SQL.replace("{values}", rows)
    args = ["--quiet", "show", "--output", "json", "--limit", "-1", "--inline", sql]
    if variables is not None:
        args += ["--vars", variables]
    return run_dbt(args, workdir, lake)


def _shown(proc) -> list[tuple]:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    start = proc.stdout.index("{")
    return [(r["suite"], r["s"], r["regime"], r["gap"]) for r in json.loads(proc.stdout[start:])["show"]]


def test_regime_thresholds_are_strict_at_their_boundaries(tmp_path):
    """Eq. 2: stable only above tau_high and chaotic only below tau_low, so a similarity equal to
    either threshold is transition (the defaults 0.997 and 0.999, as doubles exactly)."""
    values = [
        ("a", "0.99699::double"),
        ("a", "0.997::double"),  # = tau_low: transition, not chaotic
        ("a", "0.998::double"),
        ("a", "0.999::double"),  # = tau_high: transition, not stable
        ("a", "0.99901::double"),
        ("a", "null::double"),
        ("a", "'nan'::double"),
    ]
    shown = _shown(_show(tmp_path, tmp_path / "lake", values))
    assert [r for _, _, r, _ in shown] == ["chaotic", "transition", "transition", "transition", "stable", None, None]
    assert [s for _, s, _, _ in shown[:5]] == [0.99699, TAU_LOW, 0.998, TAU_HIGH, 0.99901]
    assert {gap for *_, gap in shown} == {GAP}


def test_regime_thresholds_moved_by_vars_and_per_suite(tmp_path):
    """The defaults moved by --vars, and regime_suites giving two suites their own thresholds
    and gap, over the defaults (a key a suite leaves out is the default's)."""
    variables = (
        "{regime_tau_low: 0.5, regime_tau_high: 0.75, regime_gap: 10, "
        "regime_suites: {mini: {regime_tau_low: 0.2, regime_tau_high: 0.3, regime_gap: 4}, "
        '"it\'s": {regime_tau_high: 0.6}}}'
    )
    values = [
        ("other", "0.4999::double"),
        ("other", "0.5::double"),
        ("other", "0.75::double"),
        ("other", "0.75001::double"),
        ("mini", "0.1999::double"),
        ("mini", "0.2::double"),
        ("mini", "0.3::double"),
        ("mini", "0.5::double"),
        ("it's", "0.4999::double"),
        ("it's", "0.6::double"),
        ("it's", "0.6001::double"),
    ]
    shown = _shown(_show(tmp_path, tmp_path / "lake", values, variables))
    assert [(suite, r, gap) for suite, _, r, gap in shown] == [
        ("other", "chaotic", 10),
        ("other", "transition", 10),
        ("other", "transition", 10),
        ("other", "stable", 10),
        ("mini", "chaotic", 4),
        ("mini", "transition", 4),
        ("mini", "transition", 4),
        ("mini", "stable", 4),
        ("it's", "chaotic", 10),  # its own tau_high, the default tau_low 0.5 and gap 10
        ("it's", "transition", 10),
        ("it's", "stable", 10),
    ]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            "{regime_tau_low: 0.9995, regime_tau_high: 0.999}",
            "dbt var regime_tau_low (0.9995) exceeds dbt var regime_tau_high (0.999)",
        ),
        ("{regime_tau_high: high}", "dbt var regime_tau_high must be a finite number, got high"),
        ("{regime_gap: 0}", "dbt var regime_gap must be a whole number of training steps, at least 1, got 0"),
        (
            "{regime_suites: {mini: {regime_tau_low: 0.9999}}}",
            "dbt var regime_suites.mini.regime_tau_low (0.9999) exceeds dbt var regime_suites.mini.regime_tau_high",
        ),
        ("{regime_suites: {mini: {tau_low: 0.9}}}", "dbt var regime_suites.mini has an unknown key tau_low"),
        ("{regime_stable_from: 0.99}", "dbt var regime_stable_from is now regime_tau_high"),
    ],
)
def test_bad_regime_vars_are_refused_naming_the_var(tmp_path, variables, message):
    proc = _show(tmp_path, tmp_path / "lake", [("mini", "0.5::double")], variables)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


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
        "int_fingerprint_seed_pairs", "int_regime_entry", "int_regime_checkpoints", *NEW_MARTS,
    ):  # fmt: skip
        if relation == "mart_mcentire_table1_final_loss":
            continue  # the final loss comes from token_stats, which the old lake has
        assert con.execute(f"select count(*) from {relation}").fetchone()[0] == 0, relation
    assert con.execute("select count(*) from mart_mcentire_table1_final_loss").fetchone()[0] == len(synth.sizes)
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

    proc = run_dbt(["build", "--exclude-resource-type", "test", "--vars", BUILD_VARS], tmp_path, synth.root)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    proc = run_dbt(["test", "--vars", BUILD_VARS], tmp_path, synth.root)
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
