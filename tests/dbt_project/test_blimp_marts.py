"""The BLiMP marts over a small synthetic lake, against numpy and against exact known answers.

The lake (one `dbt build`, module-scoped) holds three suites:

- `mini`, causal: two sizes, three seeds, five paradigms of BLiMP pairs in four fields (one of
  them spelled `syntax/semantics`, as BLiMP's files spell one paradigm's), random sentence
  log-probabilities, one partition written before BLiMP (no blimp_scores, a manifest without
  the BLiMP keys), and one paradigm at one checkpoint built so that averaging p(good) over the
  paradigm before the KL gives 0 while the per-pair KL does not;
- `known`, causal: two seeds whose pairs have two-point KLs known exactly (0, KL(0.9 || 0.5),
  KL(0.5 || 0.9), sentence log-probabilities of -80 and -800 whose probabilities underflow,
  log-odds of +-60, and log-odds that differ by 2^-30, 2^-20, 2^-11 and 2^-9 around the
  macro's series threshold), checked against 60-digit decimal arithmetic through the real macro;
- `mlm`, masked: partitions without blimp_scores, icl_scores or loglik, whose manifests list none
  of them; they pass every data test and get no BLiMP rows.

Also a lake written before BLiMP existed (tests/helpers/lakes.write_synthetic_lake) builds with
empty BLiMP marts, and a lake whose BLiMP scores disagree with their manifest or their pairs fails
on the data tests. Those two build only the models they need (`--select`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from decimal import Decimal, getcontext
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.dbt import built_warehouse, run_dbt, run_results, statuses_by_test_name
from tests.helpers.lakes import (
    blimp_scores_rows,
    make_manifest,
    pair_kl_rows,
    partition_dir,
    token_stats_rows,
    write_blimp_pairs,
    write_checkpoint,
    write_one_document,
    write_synthetic_lake,
    write_unigram,
)

SEEDS = (1, 2, 3)
WORDS = ["The", " jury", " said", " it"]

# suite -> size -> (n_params, steps)
CAUSAL = "mini"
SIZES = {"small": (1_000, (0, 1, 4)), "large": (4_000, (0, 4))}
OLD = {("large", 0)}  # written before BLiMP
# (uid, field as the source spells it, linguistics_term, pairs)
PARADIGMS = (
    ("anaphor_gender_agreement", "morphology", "anaphor_agreement", 2),
    ("determiner_noun_agreement_1", "morphology", "determiner_noun_agreement", 3),
    ("adjunct_island", "syntax", "island_effects", 4),
    ("principle_A_case_2", "syntax/semantics", "binding", 2),
    ("principle_A_c_command", "syntax_semantics", "binding", 3),
)
FIELDS = {"morphology", "syntax", "syntax_semantics"}
# At this checkpoint, adjunct_island's pairs get p(good) such that every seed's mean over the
# paradigm is 0.5: the published code (p averaged per paradigm, then the KL) would say the seeds
# agree exactly; per pair they do not.
AVERAGED_FIRST = ("small", 4, "adjunct_island")
AVERAGED_FIRST_P = {1: (0.9, 0.1, 0.5, 0.5), 2: (0.1, 0.9, 0.5, 0.5), 3: (0.5, 0.5, 0.9, 0.1)}

KNOWN = "known"
KNOWN_SEEDS = (1, 2)
LN9 = math.log(9.0)
# (logprob_good, logprob_bad) of seed 1 and of seed 2 per pair, and what the pair shows
KNOWN_PAIRS = (
    ((-40.0, -41.0), (-60.0, -61.0), "equal log-odds: KL 0 both ways"),
    ((-30.0, -30.0 - LN9), (-35.0, -35.0), "p = 0.9 against p = 0.5"),
    ((-80.0, -81.0), (-50.0, -50.0), "p = sigmoid(1) from -80 and -81"),
    ((-800.0, -801.0), (-1000.0, -1000.0), "the same from log-probabilities whose exp underflows"),
    ((-40.0, -100.0), (-100.0, -40.0), "log-odds +60 against -60"),
    ((-40.0, -40.25), (-40.0 + 2.0**-30, -40.25), "log-odds 2^-30 apart: the series branch"),
    ((-40.0, -40.25), (-40.0 + 2.0**-11, -40.25), "2^-11 apart: the series, near its threshold 1e-3"),
    ((-40.0, -40.25), (-40.0 + 2.0**-9, -40.25), "2^-9 apart: the direct formula, near the threshold"),
    ((-40.0, -60.0), (-40.0 + 2.0**-20, -60.0), "log-odds 20 and 20 + 2^-20: p near 1, the series"),
)

MASKED = "mlm"
MASKED_STEPS = (0, 1)

BLIMP_MARTS = ("mart_blimp_pair_kl", "mart_blimp_paradigm", "mart_blimp_field", "mart_blimp_convergence",
               "mart_blimp_accuracy")  # fmt: skip
MART_COLUMNS = {
    "int_blimp_seed_scores": [
        "suite", "size", "step", "seed", "pair_index", "uid", "field", "linguistics_term", "logprob_good",
        "logprob_bad", "logit", "p_good", "correct",
    ],
    "mart_blimp_pair_kl": [
        "suite", "size", "step", "pair_index", "seed_a", "seed_b", "uid", "field", "logit_a", "logit_b",
        "p_good_a", "p_good_b", "kl",
    ],
    "mart_blimp_paradigm": [
        "suite", "size", "step", "n_params", "uid", "field", "linguistics_term", "n_pairs", "n_seeds",
        "n_seed_pairs", "expected_conv", "expected_kl", "conv_std", "accuracy", "accuracy_seed_std",
    ],
    "mart_blimp_field": [
        "suite", "size", "step", "n_params", "field", "n_paradigms", "n_pairs", "expected_conv", "expected_kl",
        "accuracy",
    ],
    "mart_blimp_convergence": [
        "suite", "size", "step", "n_params", "n_seeds", "blimp_set_hash", "n_paradigms", "n_pairs",
        "n_seed_pairs", "expected_conv", "pair_conv_std", "band_low", "band_high", "expected_kl", "accuracy",
        "accuracy_min", "accuracy_max", "accuracy_seed_std",
    ],
    "mart_blimp_accuracy": [
        "suite", "size", "step", "n_params", "seed", "n_pairs", "n_paradigms", "accuracy", "macro_accuracy",
    ],
}  # fmt: skip


@dataclass
class BlimpLake:
    """What write_blimp_lake wrote: per (size, step) of `mini`, [n_seeds, n_pairs] log-probabilities."""

    root: Path
    good: dict = field(default_factory=dict)
    bad: dict = field(default_factory=dict)
    uid: list = field(default_factory=list)  # per pair of `mini`
    field_of: dict = field(default_factory=dict)  # uid -> field (normalised)

    @property
    def partitions(self) -> list[tuple[str, int]]:
        return sorted(self.good)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _token_tables(rng: np.random.Generator, seeds: tuple[int, ...]) -> tuple[dict, dict]:
    n = len(WORDS)
    kl = np.full((len(seeds), len(seeds), n), np.nan)
    kl[~np.eye(len(seeds), dtype=bool)] = rng.integers(1, 256, (len(seeds) * (len(seeds) - 1), n)) / 64
    surprisal = rng.integers(16, 256, (len(seeds), n)) / 32
    stats = {
        "surprisal": surprisal,
        "entropy": 0.5 * surprisal,
        "kl_uniform": 8.0 - 0.5 * surprisal,
        "kl_unigram": 0.25 * surprisal,
        "tail_mass": np.full(surprisal.shape, 0.125),
    }
    return token_stats_rows(stats, seeds), pair_kl_rows(kl, seeds)


def _pairs_rows(paradigms) -> dict[str, list]:
    rows: dict[str, list] = {
        k: []
        for k in ("pair_index", "uid", "field", "linguistics_term", "pair_id", "sentence_good", "sentence_bad",
                  "n_tokens_good", "n_tokens_bad")
    }  # fmt: skip
    index = 0
    for uid, field_name, term, n_pairs in paradigms:
        for k in range(n_pairs):
            for key, value in (
                ("pair_index", index), ("uid", uid), ("field", field_name), ("linguistics_term", term),
                ("pair_id", str(k)), ("sentence_good", f"Good sentence {index}."),
                ("sentence_bad", f"Bad sentence {index} ."), ("n_tokens_good", 4), ("n_tokens_bad", 5),
            ):  # fmt: skip
                rows[key].append(value)
            index += 1
    return rows


def write_blimp_lake(lake: Path, rng_seed: int = 11) -> BlimpLake:
    lake = Path(lake)
    rng = np.random.default_rng(rng_seed)
    synth = BlimpLake(root=lake)
    for suite in (CAUSAL, KNOWN, MASKED):
        write_one_document(lake, suite, WORDS, [30 + p for p in range(len(WORDS))], window=len(WORDS))
        write_unigram(lake, suite, {30 + p: 5 + p for p in range(len(WORDS))})

    # --- mini: causal, random log-probabilities ---
    write_blimp_pairs(lake, CAUSAL, _pairs_rows(PARADIGMS))
    synth.uid = [uid for uid, _, _, n in PARADIGMS for _ in range(n)]
    synth.field_of = {uid: f.replace("/", "_") for uid, f, _, _ in PARADIGMS}
    n_pairs = len(synth.uid)
    for size, (n_params, steps) in SIZES.items():
        for step in steps:
            ts_rows, pk_rows = _token_tables(rng, SEEDS)
            counts = {"n_token_stats": len(ts_rows["seed"]), "n_pair_kl": len(pk_rows["kl"])}
            if (size, step) in OLD:
                manifest = make_manifest(CAUSAL, size, step, n_params=n_params, seeds=list(SEEDS), **counts)
                write_checkpoint(lake, CAUSAL, size, step, token_stats=ts_rows, pair_kl=pk_rows, manifest=manifest)
                continue
            good = -rng.integers(30 * 16, 100 * 16, (len(SEEDS), n_pairs)) / 16
            bad = good - rng.integers(-64, 64, (len(SEEDS), n_pairs)) / 16
            if (size, step) == AVERAGED_FIRST[:2]:
                columns = [k for k, uid in enumerate(synth.uid) if uid == AVERAGED_FIRST[2]]
                for i, seed in enumerate(SEEDS):
                    for column, p in zip(columns, AVERAGED_FIRST_P[seed]):
                        good[i, column] = -45.0 + _logit(p)
                        bad[i, column] = -45.0
            synth.good[size, step], synth.bad[size, step] = good, bad
            bs_rows = blimp_scores_rows(good, bad, SEEDS)
            manifest = make_manifest(
                CAUSAL, size, step, n_params=n_params, seeds=list(SEEDS), **counts,
                n_blimp_scores=len(bs_rows["seed"]), blimp_set_hash="sha256:blimp-v1", objective="causal",
            )  # fmt: skip
            write_checkpoint(lake, CAUSAL, size, step, token_stats=ts_rows, pair_kl=pk_rows, manifest=manifest,
                             blimp_scores=bs_rows)  # fmt: skip

    # --- known: two seeds, known answers ---
    write_blimp_pairs(lake, KNOWN, _pairs_rows((("known_answers", "semantics", "known", len(KNOWN_PAIRS)),)))
    good = np.array([[seed[0] for seed in pair[:2]] for pair in KNOWN_PAIRS]).T
    bad = np.array([[seed[1] for seed in pair[:2]] for pair in KNOWN_PAIRS]).T
    ts_rows, pk_rows = _token_tables(rng, KNOWN_SEEDS)
    bs_rows = blimp_scores_rows(good, bad, KNOWN_SEEDS)
    manifest = make_manifest(
        KNOWN, "k", 0, n_params=10, seeds=list(KNOWN_SEEDS), n_token_stats=len(ts_rows["seed"]),
        n_pair_kl=len(pk_rows["kl"]), n_blimp_scores=len(bs_rows["seed"]), blimp_set_hash="sha256:known",
        objective="causal",
    )  # fmt: skip
    write_checkpoint(lake, KNOWN, "k", 0, token_stats=ts_rows, pair_kl=pk_rows, manifest=manifest,
                     blimp_scores=bs_rows)  # fmt: skip

    # --- mlm: masked, no BLiMP, ICL or log-likelihoods ---
    for step in MASKED_STEPS:
        ts_rows, pk_rows = _token_tables(rng, SEEDS)
        manifest = make_manifest(
            MASKED, "s", step, n_params=500, seeds=list(SEEDS), n_token_stats=len(ts_rows["seed"]),
            n_pair_kl=len(pk_rows["kl"]), objective="masked",
        )  # fmt: skip
        write_checkpoint(lake, MASKED, "s", step, token_stats=ts_rows, pair_kl=pk_rows, manifest=manifest)
    return synth


# --- the hand computation -----------------------------------------------------------------------


def sigmoid(d):
    return 1.0 / (1.0 + np.exp(-np.asarray(d, dtype=float)))


def two_point_kl(p_a, p_b):
    p_a, p_b = np.asarray(p_a, dtype=float), np.asarray(p_b, dtype=float)
    return p_a * np.log(p_a / p_b) + (1 - p_a) * np.log((1 - p_a) / (1 - p_b))


def exact_kl(good_a: float, bad_a: float, good_b: float, bad_b: float) -> float:
    """Two-point KL from the sentence log-probabilities in 60-digit decimal arithmetic."""
    getcontext().prec = 60

    def probabilities(good: float, bad: float) -> tuple[Decimal, Decimal]:
        d = Decimal(good) - Decimal(bad)  # exact: the floats' own values
        p = 1 / (1 + (-d).exp())
        q = (-d).exp() / (1 + (-d).exp())
        return p, q

    p_a, q_a = probabilities(good_a, bad_a)
    p_b, q_b = probabilities(good_b, bad_b)
    return float(p_a * (p_a / p_b).ln() + q_a * (q_a / q_b).ln())


def per_pair_kl(good: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """[n_seeds, n_seeds, n_pairs] two-point KL(p_a || p_b), NaN on the diagonal."""
    p = sigmoid(good - bad)
    n = p.shape[0]
    kl = np.full((n, n, p.shape[1]), np.nan)
    for i, j in itertools.permutations(range(n), 2):
        kl[i, j] = two_point_kl(p[i], p[j])
    return kl


def expected_paradigms(synth: BlimpLake) -> dict[tuple, dict]:
    """(size, step, uid) -> expected_kl, conv_std, accuracy, accuracy_seed_std, n_pairs."""
    out = {}
    uids = np.array(synth.uid)
    for (size, step), good in synth.good.items():
        bad = synth.bad[size, step]
        kl = per_pair_kl(good, bad)
        correct = good > bad
        for uid in dict.fromkeys(synth.uid):
            columns = uids == uid
            pair_means = np.nanmean(kl[:, :, columns], axis=(0, 1))
            seed_accuracy = correct[:, columns].mean(axis=1)
            out[size, step, uid] = {
                "expected_kl": pair_means.mean(),
                "conv_std": (-pair_means).std(ddof=1),
                "accuracy": seed_accuracy.mean(),
                "accuracy_seed_std": seed_accuracy.std(ddof=1),
                "n_pairs": int(columns.sum()),
                "seed_pair_kl": kl[:, :, columns].mean(axis=2),  # [a, b]: mean over the pairs (NaN on the diagonal)
                "seed_accuracy": seed_accuracy,
            }
    return out


def _rows(con, sql: str, params=None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _columns(con, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"describe {table}").fetchall()]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The BLiMP lake, built once by `dbt build`; yields (synth, connection, workdir)."""
    workdir = tmp_path_factory.mktemp("dbt_blimp")
    synth = write_blimp_lake(workdir / "lake")
    with built_warehouse(workdir, synth.root) as con:
        yield synth, con, workdir


# --- the tests ----------------------------------------------------------------------------------


def test_build_passes_every_model_and_test(built):
    _, _, workdir = built
    statuses = run_results(workdir)
    bad = {k: v for k, v in statuses.items() if v not in ("success", "pass")}
    assert not bad, bad
    by_name = statuses_by_test_name(statuses)
    for name in (
        "assert_blimp_kl_nonnegative",
        "assert_blimp_scores_complete",
        "stg_blimp_scores_pair_in_pair_set",
        "stg_blimp_scores_logprob_in_range",
        "assert_manifest_matches_partition",
        "assert_pairs_complete",
        "assert_token_stats_complete",
        "mart_blimp_paradigm_in_range",
        "mart_blimp_convergence_in_range",
        "mart_blimp_accuracy_in_range",
        "mart_blimp_field_in_range",
    ):
        assert by_name[name] == "pass", name
    for model in ("stg_blimp_pairs", "stg_blimp_scores", "int_blimp_seed_scores", *BLIMP_MARTS):
        assert statuses[f"model.seedconv.{model}"] == "success", model


def test_marts_have_the_contract_columns(built):
    _, con, _ = built
    for mart, columns in MART_COLUMNS.items():
        assert _columns(con, mart) == columns, mart


def test_stg_checkpoints_reads_objective_and_blimp_keys(built):
    synth, con, _ = built
    rows = {(r["suite"], r["size"], r["step"]): r for r in _rows(con, "select * from stg_checkpoints")}
    for (suite, size, step), row in rows.items():
        if suite == MASKED:
            assert row["objective"] == "masked"
            assert row["blimp_set_hash"] is None and row["blimp_scores_rows"] is None
            assert row["icl_scores_rows"] is None and row["loglik_rows"] is None
        elif suite == CAUSAL and (size, step) in OLD:
            # an older manifest: no objective (read as causal) and no BLiMP keys
            assert row["objective"] == "causal"
            assert row["blimp_set_hash"] is None and row["blimp_scores_rows"] is None
        elif suite == CAUSAL:
            assert row["objective"] == "causal"
            assert row["blimp_set_hash"] == "sha256:blimp-v1"
            assert row["blimp_scores_rows"] == len(SEEDS) * len(synth.uid)
        else:
            assert row["blimp_scores_rows"] == len(KNOWN_SEEDS) * len(KNOWN_PAIRS)
    assert len(rows) == len(synth.partitions) + len(OLD) + 1 + len(MASKED_STEPS)


def test_field_spelled_with_a_slash_is_read_as_syntax_semantics(built):
    _, con, _ = built
    fields = {
        r[0] for r in con.execute("select distinct field from stg_blimp_pairs where suite = ?", [CAUSAL]).fetchall()
    }
    assert fields == FIELDS
    got = con.execute("select field from stg_blimp_pairs where uid = 'principle_A_case_2' limit 1").fetchone()[0]
    assert got == "syntax_semantics"


def test_known_two_point_kls_through_the_macro(built):
    _, con, _ = built
    rows = {
        (r["pair_index"], r["seed_a"]): r
        for r in _rows(con, "select * from mart_blimp_pair_kl where suite = ?", [KNOWN])
    }
    assert len(rows) == 2 * len(KNOWN_PAIRS)
    for index, ((good_1, bad_1), (good_2, bad_2), what) in enumerate(KNOWN_PAIRS):
        forward, backward = rows[index, 1], rows[index, 2]
        assert forward["seed_b"] == 2 and backward["seed_b"] == 1
        assert forward["kl"] == pytest.approx(exact_kl(good_1, bad_1, good_2, bad_2), rel=1e-9, abs=0), what
        assert backward["kl"] == pytest.approx(exact_kl(good_2, bad_2, good_1, bad_1), rel=1e-9, abs=0), what
        assert forward["kl"] >= 0 and backward["kl"] >= 0
    # equal log-odds from different sentence log-probabilities: exactly 0
    assert rows[0, 1]["kl"] == 0.0 and rows[0, 2]["kl"] == 0.0
    # p = 0.9 against p = 0.5: 0.9 ln 1.8 + 0.1 ln 0.2, and the other way 0.5 ln(5/9) + 0.5 ln 5
    assert rows[1, 1]["p_good_a"] == pytest.approx(0.9, rel=1e-14)
    assert rows[1, 1]["p_good_b"] == 0.5
    assert rows[1, 1]["kl"] == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=1e-12)
    assert rows[1, 1]["kl"] == pytest.approx(0.36806, abs=5e-6)
    assert rows[1, 2]["kl"] == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1), rel=1e-12)
    assert rows[1, 2]["kl"] == pytest.approx(0.51083, abs=5e-6)
    # log-probabilities of -80 / -81 and -800 / -801 (exp(-800) is 0 in double) give p = sigmoid(1)
    for index in (2, 3):
        assert rows[index, 1]["p_good_a"] == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-14)
        assert rows[index, 1]["kl"] == pytest.approx(two_point_kl(1 / (1 + math.exp(-1)), 0.5), rel=1e-12)
    assert rows[3, 1]["kl"] == pytest.approx(rows[2, 1]["kl"], rel=1e-14)
    # log-odds +60 and -60: about 60 nats one way and the other; 1 - p_good kept to its digits
    assert rows[4, 1]["kl"] == pytest.approx(60.0, rel=1e-6)
    # log-odds 2^-30 apart: a KL near 1e-19, to 9 digits (the direct formula would give noise)
    assert 0 < rows[5, 1]["kl"] < 1e-18


def test_seed_scores_equal_numpy(built):
    synth, con, _ = built
    for (size, step), good in synth.good.items():
        bad = synth.bad[size, step]
        got = _rows(
            con,
            "select seed, pair_index, uid, field, logit, p_good, correct from int_blimp_seed_scores "
            "where suite = ? and size = ? and step = ? order by seed, pair_index",
            [CAUSAL, size, step],
        )
        assert len(got) == good.size
        for row in got:
            i = SEEDS.index(row["seed"])
            k = row["pair_index"]
            assert row["uid"] == synth.uid[k] and row["field"] == synth.field_of[synth.uid[k]]
            assert row["logit"] == good[i, k] - bad[i, k]
            assert row["p_good"] == pytest.approx(sigmoid(good[i, k] - bad[i, k]), rel=1e-13)
            assert row["correct"] == bool(good[i, k] > bad[i, k])


def test_pair_kl_equals_numpy(built):
    synth, con, _ = built
    for (size, step), good in synth.good.items():
        kl = per_pair_kl(good, synth.bad[size, step])
        got = con.execute(
            "select seed_a, seed_b, pair_index, kl from mart_blimp_pair_kl where suite = ? and size = ? and step = ?",
            [CAUSAL, size, step],
        ).fetchall()
        assert len(got) == len(SEEDS) * (len(SEEDS) - 1) * good.shape[1]
        for seed_a, seed_b, k, value in got:
            assert value == pytest.approx(kl[SEEDS.index(seed_a), SEEDS.index(seed_b), k], rel=1e-10, abs=1e-15)


def test_paradigm_means_equal_numpy(built):
    synth, con, _ = built
    expected = expected_paradigms(synth)
    rows = {(r["size"], r["step"], r["uid"]): r for r in _rows(con, "select * from mart_blimp_paradigm where suite = ?",
                                                              [CAUSAL])}  # fmt: skip
    assert set(rows) == set(expected)
    for key, want in expected.items():
        row = rows[key]
        assert row["n_params"] == SIZES[key[0]][0]
        assert row["field"] == synth.field_of[key[2]]
        assert row["n_pairs"] == want["n_pairs"] and row["n_seeds"] == 3 and row["n_seed_pairs"] == 6
        assert row["expected_kl"] == pytest.approx(want["expected_kl"], rel=1e-10)
        assert row["expected_conv"] == -row["expected_kl"]
        assert row["conv_std"] == pytest.approx(want["conv_std"], rel=1e-9)
        assert row["accuracy"] == pytest.approx(want["accuracy"])
        assert row["accuracy_seed_std"] == pytest.approx(want["accuracy_seed_std"], abs=1e-12)


def test_kl_is_taken_per_pair_then_averaged(built):
    """The published code's fault: p(good) averaged over the paradigm, then one KL per paradigm.
    Here every seed's mean p over adjunct_island is 0.5, so that gives 0; the seeds disagree on
    every pair, and the mart says so."""
    synth, con, _ = built
    size, step, uid = AVERAGED_FIRST
    columns = [k for k, u in enumerate(synth.uid) if u == uid]
    p = sigmoid(synth.good[size, step] - synth.bad[size, step])[:, columns]
    assert p == pytest.approx(np.array([AVERAGED_FIRST_P[s] for s in SEEDS]))
    mean_p = p.mean(axis=1)
    averaged_first = np.mean([two_point_kl(mean_p[i], mean_p[j]) for i, j in itertools.permutations(range(3), 2)])
    per_pair = np.mean([two_point_kl(p[i], p[j]).mean() for i, j in itertools.permutations(range(3), 2)])
    assert averaged_first == pytest.approx(0.0, abs=1e-15)
    assert per_pair > 0.3
    got = con.execute(
        "select expected_kl, expected_conv from mart_blimp_paradigm where suite = ? and size = ? and step = ? "
        "and uid = ?",
        [CAUSAL, size, step, uid],
    ).fetchone()
    assert got[0] == pytest.approx(per_pair, rel=1e-10)
    assert got[1] == pytest.approx(-per_pair, rel=1e-10)


def test_field_means_weigh_each_paradigm_the_same(built):
    synth, con, _ = built
    expected = expected_paradigms(synth)
    rows = {(r["size"], r["step"], r["field"]): r for r in _rows(con, "select * from mart_blimp_field where suite = ?",
                                                                [CAUSAL])}  # fmt: skip
    assert {key[2] for key in rows} == FIELDS
    for size, step in synth.partitions:
        for field_name in FIELDS:
            uids = [u for u in dict.fromkeys(synth.uid) if synth.field_of[u] == field_name]
            row = rows[size, step, field_name]
            assert row["n_paradigms"] == len(uids)
            assert row["n_pairs"] == sum(expected[size, step, u]["n_pairs"] for u in uids)
            assert row["expected_kl"] == pytest.approx(np.mean([expected[size, step, u]["expected_kl"] for u in uids]))
            assert row["expected_conv"] == pytest.approx(-row["expected_kl"])
            assert row["accuracy"] == pytest.approx(np.mean([expected[size, step, u]["accuracy"] for u in uids]))
    # morphology's paradigms have 2 and 3 pairs: the paradigm mean is not the pooled pair mean
    size, step = synth.partitions[0]
    uids = [u for u in dict.fromkeys(synth.uid) if synth.field_of[u] == "morphology"]
    pooled = sum(expected[size, step, u]["expected_kl"] * expected[size, step, u]["n_pairs"] for u in uids) / 5
    assert rows[size, step, "morphology"]["expected_kl"] != pytest.approx(pooled, rel=1e-6)


def test_convergence_equals_numpy(built):
    synth, con, _ = built
    expected = expected_paradigms(synth)
    rows = {(r["size"], r["step"]): r for r in _rows(con, "select * from mart_blimp_convergence where suite = ?",
                                                     [CAUSAL])}  # fmt: skip
    assert set(rows) == set(synth.partitions), "no row for the partition written before BLiMP"
    uids = list(dict.fromkeys(synth.uid))
    for (size, step), row in rows.items():
        paradigms = [expected[size, step, u] for u in uids]
        expected_conv = -np.mean([p["expected_kl"] for p in paradigms])
        # each ordered seed pair's mean over paradigms of its mean KL over their pairs
        seed_pair = np.mean([p["seed_pair_kl"] for p in paradigms], axis=0)
        pair_conv = -seed_pair[~np.eye(3, dtype=bool)]
        seed_accuracy = np.mean([p["seed_accuracy"] for p in paradigms], axis=0)
        assert row["n_params"] == SIZES[size][0] and row["n_seeds"] == 3
        assert row["blimp_set_hash"] == "sha256:blimp-v1"
        assert row["n_paradigms"] == len(PARADIGMS) and row["n_pairs"] == len(synth.uid)
        assert row["n_seed_pairs"] == 6
        assert row["expected_conv"] == pytest.approx(expected_conv, rel=1e-10)
        assert row["expected_conv"] == pytest.approx(pair_conv.mean(), rel=1e-10)  # balanced
        assert row["expected_kl"] == -row["expected_conv"]
        assert row["pair_conv_std"] == pytest.approx(pair_conv.std(ddof=1), rel=1e-9)
        assert row["band_low"] == pytest.approx(expected_conv - pair_conv.std(ddof=1), rel=1e-9)
        assert row["band_high"] == pytest.approx(expected_conv + pair_conv.std(ddof=1), rel=1e-9)
        assert row["accuracy"] == pytest.approx(seed_accuracy.mean())
        assert row["accuracy_min"] == pytest.approx(seed_accuracy.min())
        assert row["accuracy_max"] == pytest.approx(seed_accuracy.max())
        assert row["accuracy_seed_std"] == pytest.approx(seed_accuracy.std(ddof=1), abs=1e-12)


def test_accuracy_per_seed_equals_numpy(built):
    synth, con, _ = built
    accuracy = _rows(con, "select * from mart_blimp_accuracy where suite = ?", [CAUSAL])
    rows = {(r["size"], r["step"], r["seed"]): r for r in accuracy}
    assert len(rows) == len(synth.partitions) * len(SEEDS)
    uids = np.array(synth.uid)
    for (size, step), good in synth.good.items():
        correct = good > synth.bad[size, step]
        for i, seed in enumerate(SEEDS):
            row = rows[size, step, seed]
            macro = np.mean([correct[i, uids == u].mean() for u in dict.fromkeys(synth.uid)])
            assert row["n_pairs"] == len(synth.uid) and row["n_paradigms"] == len(PARADIGMS)
            assert row["accuracy"] == pytest.approx(correct[i].mean())
            assert row["macro_accuracy"] == pytest.approx(macro)
    # the paradigms differ in size, so the two accuracies differ somewhere
    assert any(abs(r["accuracy"] - r["macro_accuracy"]) > 1e-9 for r in rows.values())


def test_masked_partitions_pass_the_data_tests_without_blimp(built):
    """A masked suite's partitions have no blimp_scores, icl_scores or loglik, and their manifests
    list none of them: every data test passes (test_build_passes_every_model_and_test), the
    partition checks count 0 rows, and no BLiMP mart has a row of the suite."""
    _, con, _ = built
    checks = _rows(con, "select * from int_partition_checks where suite = ?", [MASKED])
    assert len(checks) == len(MASKED_STEPS)
    for row in checks:
        assert row["blimp_scores_rows"] == 0 and row["icl_scores_rows"] == 0 and row["loglik_rows"] == 0
        assert row["pair_kl_rows"] > 0
    for relation in ("stg_blimp_scores", "int_blimp_seed_scores", *BLIMP_MARTS):
        assert con.execute(f"select count(*) from {relation} where suite = ?", [MASKED]).fetchone()[0] == 0
    # the convergence marts do have the masked suite
    assert con.execute("select count(*) from mart_expected_convergence where suite = ?", [MASKED]).fetchone()[0] == 2
    causal = _rows(con, "select * from int_partition_checks where suite = ?", [CAUSAL])
    assert {r["blimp_scores_rows"] for r in causal} == {0, len(SEEDS) * 14}


# --- a lake written before BLiMP ----------------------------------------------------------------

BLIMP_SELECTION = ["--select", "+mart_blimp_field", "+mart_blimp_convergence", "+mart_blimp_accuracy",
                   "--indirect-selection", "cautious"]  # fmt: skip


def test_lake_without_blimp_builds_with_empty_marts(tmp_path):
    synth = write_synthetic_lake(tmp_path / "lake")
    assert not (synth.root / "blimp_pairs").exists()
    proc = run_dbt(["build", *BLIMP_SELECTION], tmp_path, synth.root)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    statuses = run_results(tmp_path)
    bad = {k: v for k, v in statuses.items() if v not in ("success", "pass")}
    assert not bad, bad
    assert statuses_by_test_name(statuses)["assert_blimp_kl_nonnegative"] == "pass"
    with duckdb.connect(str(tmp_path / "seedconv.duckdb"), read_only=True) as con:
        for relation in ("stg_blimp_pairs", "stg_blimp_scores", "int_blimp_seed_scores", *BLIMP_MARTS):
            assert con.execute(f"select count(*) from {relation}").fetchone()[0] == 0, relation
        for mart, columns in MART_COLUMNS.items():
            assert _columns(con, mart) == columns, mart
        got = con.execute(
            "select count(*), count(blimp_scores_rows), count(blimp_set_hash), min(objective), max(objective) "
            "from stg_checkpoints"
        ).fetchone()
        assert got == (len(synth.partitions), 0, 0, "causal", "causal")


# --- a lake whose BLiMP scores disagree with their manifest or their pairs ---------------------


def test_bad_blimp_scores_fail_their_data_tests(tmp_path):
    synth = write_blimp_lake(tmp_path / "lake")

    def rewrite(size: str, step: int, change) -> None:
        path = partition_dir(synth.root, CAUSAL, size, step) / "blimp_scores.parquet"
        schema = pq.read_schema(path)
        rows = pq.read_table(path).to_pydict()
        change(rows)
        pq.write_table(pa.Table.from_pydict(rows, schema=schema), path)

    def drop_first_row(rows):  # seed 1 loses pair 0: the manifest counts one row more
        for values in rows.values():
            del values[0]

    def unknown_pair(rows):  # a score of a pair the suite's pair set does not have
        rows["pair_index"] = [99 if k == 13 else k for k in rows["pair_index"]]

    def infinite(rows):  # a sentence the model gives probability 0
        rows["logprob_bad"][3] = float("-inf")

    rewrite("small", 0, drop_first_row)
    rewrite("small", 1, unknown_pair)
    rewrite("large", 4, infinite)
    selection = [*BLIMP_SELECTION[:-2], "+assert_manifest_matches_partition"]
    proc = run_dbt(["build", "--exclude-resource-type", "test", *selection], tmp_path, synth.root)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    proc = run_dbt(["test", *selection, "--indirect-selection", "cautious"], tmp_path, synth.root)
    assert proc.returncode != 0, proc.stdout[-4000:]
    statuses = run_results(tmp_path)
    assert "error" not in statuses.values(), {k: v for k, v in statuses.items() if v == "error"}
    failed = {name for name, status in statuses_by_test_name(statuses).items() if status == "fail"}
    assert failed == {
        "assert_manifest_matches_partition",  # small/0 has one row fewer than its manifest says
        "assert_blimp_scores_complete",  # seed 1 lacks pair 0 at small/0 (and pair 99 is not 13)
        "stg_blimp_scores_pair_in_pair_set",  # pair 99
        "stg_blimp_scores_logprob_in_range",  # -inf
        "assert_blimp_kl_nonnegative",  # the KLs of the -inf pair are NaN
        "mart_blimp_paradigm_in_range",  # so its paradigm's mean is NaN
        "mart_blimp_field_in_range",  # and its field's
        "mart_blimp_convergence_in_range",  # and the checkpoint's
    }
