"""The distribution marts (llama.cpp's KL-divergence statistics per seed pair and pooled) against
numpy on a synthetic lake whose seeds differ in surprisal and in their most probable token.

Every number of mart_pair_distribution and mart_kl_distribution is recomputed here from the
arrays the lake was written from: KL and delta_p percentiles (linear interpolation, numpy's
default, as llama.cpp's percentile()), top-1 agreement and its standard error, the surprisal
correlation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.helpers.dbt import built_warehouse
from tests.helpers.lakes import pair_kl_rows, token_stats_rows, write_checkpoint, write_synthetic_lake

KL_PERCENTILES = {"p0_1": 0.001, "p1": 0.01, "p5": 0.05, "p10": 0.1, "p50": 0.5, "p90": 0.9, "p95": 0.95}
KL_PERCENTILES |= {"p99": 0.99, "p99_9": 0.999}
DELTA_P_PERCENTILES = {"p0_1": 0.001, "p1": 0.01, "p5": 0.05, "p10": 0.1, "p25": 0.25, "p50": 0.5, "p75": 0.75}
DELTA_P_PERCENTILES |= {"p90": 0.9, "p95": 0.95, "p99": 0.99, "p99_9": 0.999}

# Each seed's most probable token per position (seeds x positions), rolled by one position per
# partition so that agreement differs between pairs and partitions.
TOP1 = np.array([[7, 7, 8, 9, 7, 8], [7, 8, 8, 9, 9, 8], [7, 7, 7, 9, 7, 8]])


def _surprisal_shift(n_seeds: int, n_positions: int) -> np.ndarray:
    """A dyadic shift per seed and position, so that no seed's surprisal is an affine function of
    another's (the synthetic lake's alone would correlate exactly)."""
    return np.array([[0.25 * (((i + 1) * (p + 2)) % 5) for p in range(n_positions)] for i in range(n_seeds)])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The synthetic lake with seed-dependent surprisal and top-1 tokens, built by `dbt build`;
    yields (synth, top1 ids per partition, connection)."""
    workdir = tmp_path_factory.mktemp("dbt_distribution")
    synth = write_synthetic_lake(workdir / "lake")
    top1 = {}
    for index, (size, step) in enumerate(synth.partitions):
        stats = synth.token_stats[size, step]
        stats["surprisal"] = stats["surprisal"] + _surprisal_shift(*stats["surprisal"].shape)
        top1[size, step] = np.roll(TOP1, index, axis=1)
        write_checkpoint(
            synth.root,
            synth.suite,
            size,
            step,
            token_stats=token_stats_rows(stats, top1_ids=top1[size, step]),
            pair_kl=pair_kl_rows(synth.kl[size, step]),
            manifest=None,  # the partition's manifest stays as written: the same rows
        )
    with built_warehouse(workdir, synth.root) as connection:
        yield synth, top1, connection


def _rows(connection, sql: str) -> list[dict]:
    cursor = connection.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _statistics(kl: np.ndarray, delta_p: np.ndarray, same_top1: np.ndarray) -> dict[str, float]:
    """What both marts compute alike from the values a row is over."""
    expected = {"n_tokens": kl.size, "kl_mean": kl.mean(), "kl_max": kl.max(), "top1_agreement": same_top1.mean()}
    expected |= {f"kl_{name}": np.quantile(kl, q) for name, q in KL_PERCENTILES.items()}
    expected |= {f"delta_p_{name}": np.quantile(delta_p, q) for name, q in DELTA_P_PERCENTILES.items()}
    expected |= {
        "delta_p_mean": delta_p.mean(),
        "delta_p_rms": np.sqrt(np.mean(delta_p**2)),
        "delta_p_min": delta_p.min(),
        "delta_p_max": delta_p.max(),
    }
    return expected


def _partition_arrays(synth, top1, size, step):
    """Per ordered pair (i, j) of seed indices: KL, delta_p = p_j - p_i of the true token, whether
    the top-1 tokens agree, and the two surprisal vectors."""
    surprisal = synth.token_stats[size, step]["surprisal"]
    p_true = np.exp(-surprisal)
    n = len(synth.seeds)
    pairs = [(i, j) for i, j in itertools.product(range(n), repeat=2) if i != j]
    return {
        (i, j): {
            "kl": synth.kl[size, step][i, j],
            "delta_p": p_true[j] - p_true[i],
            "same_top1": (top1[size, step][i] == top1[size, step][j]).astype(float),
            "surprisal_a": surprisal[i],
            "surprisal_b": surprisal[j],
        }
        for i, j in pairs
    }


def _assert_close(found: dict, expected: dict, where: str) -> None:
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, rel=1e-9, abs=1e-12), f"{where}: {name}"


def test_every_pair_equals_numpy(built):
    synth, top1, connection = built
    rows = _rows(connection, "select * from mart_pair_distribution")
    assert len(rows) == len(synth.partitions) * 6
    found = {(r["size"], r["step"], r["seed_a"], r["seed_b"]): r for r in rows}
    agreements = set()
    for size, step in synth.partitions:
        for (i, j), values in _partition_arrays(synth, top1, size, step).items():
            row = found[size, step, synth.seeds[i], synth.seeds[j]]
            assert row["n_params"] == synth.sizes[size]
            n = len(values["kl"])
            p = values["same_top1"].mean()
            expected = _statistics(values["kl"], values["delta_p"], values["same_top1"])
            # llama.cpp's "same top p" uncertainty
            expected["top1_agreement_se"] = np.sqrt(p * (1 - p) / (n - 1))
            expected["surprisal_corr"] = np.corrcoef(values["surprisal_a"], values["surprisal_b"])[0, 1]
            _assert_close(row, expected, f"{size}/{step}/{i}-{j}")
            agreements.add(round(p, 6))
    assert len(agreements) == 3, "the pairs agree on the top token in 3, 4 and 5 of 6 contexts"


def test_the_pooled_row_equals_numpy_over_every_context_and_pair(built):
    synth, top1, connection = built
    rows = _rows(connection, "select * from mart_kl_distribution")
    assert len(rows) == len(synth.partitions)
    found = {(r["size"], r["step"]): r for r in rows}
    for size, step in synth.partitions:
        pairs = _partition_arrays(synth, top1, size, step)
        stacked = {key: np.stack([values[key] for values in pairs.values()]) for key in ("kl", "delta_p", "same_top1")}
        expected = _statistics(stacked["kl"].ravel(), stacked["delta_p"].ravel(), stacked["same_top1"].ravel())
        # the standard error across contexts of each context's share of agreeing pairs
        per_context = stacked["same_top1"].mean(axis=0)
        expected["top1_agreement_se"] = per_context.std(ddof=1) / np.sqrt(per_context.size)
        correlations = [np.corrcoef(v["surprisal_a"], v["surprisal_b"])[0, 1] for v in pairs.values()]
        expected["surprisal_corr"] = np.mean(correlations)
        pair_agreement = stacked["same_top1"].mean(axis=1)
        expected |= {"top1_agreement_pair_min": pair_agreement.min(), "top1_agreement_pair_max": pair_agreement.max()}
        expected |= {"n_pairs": len(pairs), "n_seeds": len(synth.seeds), "n_params": synth.sizes[size]}
        _assert_close(found[size, step], expected, f"{size}/{step}")
        # both tails of delta_p: delta_p(b, a) = -delta_p(a, b)
        assert found[size, step]["delta_p_mean"] == pytest.approx(0.0, abs=1e-12)


def test_the_pooled_mean_kl_is_expected_convergence(built):
    """One KL, two marts: the pooled mean is minus E[conv] (every pair sees every context)."""
    _, _, connection = built
    rows = connection.execute(
        "select kl.kl_mean, conv.expected_conv from mart_kl_distribution as kl "
        "inner join mart_expected_convergence as conv using (suite, size, step)"
    ).fetchall()
    assert len(rows) == 4
    for kl_mean, expected_conv in rows:
        assert kl_mean == pytest.approx(-expected_conv, rel=1e-12)
