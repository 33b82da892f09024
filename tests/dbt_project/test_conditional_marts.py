"""The analysis marts (conditional convergence, final surprisal, token rankings, regression
features, ICL) over the analysis lake, each compared with the same numbers computed here with
numpy from the arrays the lake was written from.

Two builds of one lake: the default frequency corpus (the evaluation set) with groups of 2 in the
token rankings, and `frequency_corpus: train`, whose unigram counts sit on the decade edges the
frequency-bin labels must get right.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import duckdb
import numpy as np
import pytest

from tests.helpers.dbt import run_dbt, run_results, statuses_by_test_name
from tests.helpers.lakes import ANALYSIS_TOKENS, write_analysis_lake

# Coarse groups of the tags the analysis lake uses, written out by hand (penn_tags.csv has all 45).
GROUP = {
    "NN": "noun",
    "DT": "determiner",
    "IN": "preposition",
    ",": "punctuation",
    ".": "punctuation",
    "''": "punctuation",
    "``": "punctuation",
    "VB": "verb",
    "JJ": "adjective",
    "PRP$": "pronoun",
}
# Word classes of the same tags (penn_tags.csv), by hand: MD would be function, as the paper counts it.
WORD_CLASS = {
    "NN": "content",
    "DT": "function",
    "IN": "function",
    ",": "punctuation",
    ".": "punctuation",
    "''": "punctuation",
    "``": "punctuation",
    "VB": "content",
    "JJ": "content",
    "PRP$": "function",
}
# tests named in schema.yml; a generic test's unique_id is test.seedconv.<name>.<hash>
WARN_TESTS = {"stg_token_pos_pos_is_penn_tag", "stg_token_pos_prev_pos_is_penn_tag"}
RANKING_GROUP_SIZE = 2


def _rows(con, sql: str, params=None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _build(workdir, lake, variables: str) -> duckdb.DuckDBPyConnection:
    proc = run_dbt(["build", "--vars", variables], workdir, lake)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    return duckdb.connect(str(workdir / "seedconv.duckdb"), read_only=True)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return write_analysis_lake(tmp_path_factory.mktemp("analysis_lake"))


@pytest.fixture(scope="module")
def eval_build(lake, tmp_path_factory):
    """dbt build with the default frequency corpus (eval) and ranking groups of 2."""
    workdir = tmp_path_factory.mktemp("dbt_eval")
    con = _build(workdir, lake.root, f"{{ranking_group_size: {RANKING_GROUP_SIZE}}}")
    yield con, workdir
    con.close()


@pytest.fixture(scope="module")
def train_build(lake, tmp_path_factory):
    """dbt build with frequency_corpus: train and every other var at its default."""
    workdir = tmp_path_factory.mktemp("dbt_train")
    con = _build(workdir, lake.root, "{frequency_corpus: train}")
    yield con, workdir
    con.close()


# --- the hand computation -----------------------------------------------------------------------


def frequency_label(count: int) -> str:
    if count == 0:
        return "0"
    order = len(str(count)) - 1
    return f"{10**order:,}–{10 ** (order + 1) - 1:,}"


SURPRISAL_BIN_LABELS = ("<0.125", "0.125–0.25", "0.25–0.5", "0.5–1", "1–2", "2–4", "4–8", "8+")


def surprisal_bin(nats: float) -> tuple[int, str]:
    """The log-spaced bin in bits: 0 below 1/8 bit, one per doubling, 7 from 8 bits on."""
    bits = max(nats, 0.0) / math.log(2)
    order = 0 if bits < 0.125 else min(math.floor(math.log2(bits)) + 4, 7)
    return order, SURPRISAL_BIN_LABELS[order]


def penn(tag):
    return tag if tag in GROUP else None


def conv_per_context(kl: np.ndarray) -> np.ndarray:
    return -np.nanmean(kl, axis=(0, 1))


def eval_frequencies(lake) -> np.ndarray:
    counts = Counter(lake.token_id.tolist())
    return np.array([counts[t] for t in lake.token_id.tolist()])


def last_step(lake) -> int:
    return max(lake.steps)


def final_step_extracted(lake, size: str) -> bool:
    return lake.final_steps[size] in lake.steps


def final_surprisal(lake, size: str) -> np.ndarray:
    """Each position's mean surprisal at the size's final step (extracted: final_step_extracted)."""
    return lake.surprisal[size, lake.final_steps[size]].mean(axis=0)


def context_levels(lake, size: str, frequency: np.ndarray) -> dict[str, list]:
    """Per condition, each position's level (None: in no level)."""
    pos = [penn(t) for t in lake.pos]
    prev_pos = [penn(t) for t in lake.prev_pos]
    return {
        "frequency_bin": [frequency_label(int(f)) for f in frequency],
        "pos": pos,
        "pos_group": [GROUP.get(t) for t in pos],
        "word_class": [WORD_CLASS.get(t) for t in pos],
        "prev_pos": prev_pos,
        "prev_pos_group": [GROUP.get(t) for t in prev_pos],
        # no bins before the size's final checkpoint is extracted
        "final_surprisal_bin": (
            [surprisal_bin(v)[1] for v in final_surprisal(lake, size)]
            if final_step_extracted(lake, size)
            else [None] * lake.n_positions
        ),
    }


def level_orders(lake, frequency: np.ndarray) -> dict[tuple[str, str], int]:
    orders: dict[tuple[str, str], int] = {}
    for f in frequency:
        orders["frequency_bin", frequency_label(int(f))] = len(str(int(f))) - 1 if f else -1
    for order, label in enumerate(SURPRISAL_BIN_LABELS):
        orders["final_surprisal_bin", label] = order
    pos = [penn(t) for t in lake.pos]
    prev_pos = [penn(t) for t in lake.prev_pos]
    tag_columns = {
        "pos": pos,
        "pos_group": [GROUP.get(t) for t in pos],
        "word_class": [WORD_CLASS.get(t) for t in pos],
        "prev_pos": prev_pos,
        "prev_pos_group": [GROUP.get(t) for t in prev_pos],
    }
    for condition, values in tag_columns.items():
        counts = Counter(v for v in values if v is not None)
        for rank, (level, _) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), start=1):
            orders[condition, level] = rank
    return orders


def expected_conditional(lake, frequency: np.ndarray) -> dict[tuple, dict]:
    orders = level_orders(lake, frequency)
    expected = {}
    for size, step in lake.partitions:
        conv = conv_per_context(lake.kl[size, step])
        surprisal = lake.surprisal[size, step].mean(axis=0)
        for condition, levels in context_levels(lake, size, frequency).items():
            members = defaultdict(list)
            for position, level in enumerate(levels):
                if level is not None:
                    members[level].append(position)
            for level, positions in members.items():
                values = conv[positions]
                n = len(positions)
                std = values.std(ddof=1) if n > 1 else None
                expected[size, step, condition, level] = {
                    "n_params": lake.sizes[size],
                    "level_order": orders[condition, level],
                    "n_contexts": n,
                    "expected_conv": values.mean(),
                    "conv_std": std,
                    "conv_se": None if std is None else std / np.sqrt(n),
                    "cross_entropy": surprisal[positions].mean(),
                }
    return expected


def _approx_or_none(value):
    return None if value is None else pytest.approx(value)


# --- the tests ----------------------------------------------------------------------------------


def _assert_build_clean(workdir) -> None:
    statuses = run_results(workdir)
    by_name = statuses_by_test_name(statuses)
    failed_nodes = {k: v for k, v in statuses.items() if not k.startswith("test.") and v != "success"}
    assert not failed_nodes, failed_nodes
    bad = {k: v for k, v in by_name.items() if v != "pass" and k not in WARN_TESTS}
    assert not bad, bad
    # the lake's "XX" tag is no Penn tag: the build warns about it and goes on
    assert {by_name[k] for k in WARN_TESTS} == {"warn"}
    for singular in (
        "assert_frequency_bin_matches_range",
        "assert_final_surprisal_bin_matches_range",
        "assert_conditional_levels_cover_contexts",
        "assert_icl_context_order",
        "assert_icl_scores_complete",
        "assert_token_pos_matches_eval_tokens",
        "assert_penn_tags_complete",
        "assert_token_rankings_ordered",
        "assert_manifest_matches_partition",
    ):
        assert by_name[singular] == "pass", singular


def test_build_passes_every_model_and_test(eval_build):
    _assert_build_clean(eval_build[1])


def test_build_with_train_frequencies_passes(train_build):
    _assert_build_clean(train_build[1])


def test_conditional_convergence_equals_hand_computation(eval_build, lake):
    con, _ = eval_build
    expected = expected_conditional(lake, eval_frequencies(lake))
    rows = {
        (r["size"], r["step"], r["condition"], r["level"]): r
        for r in _rows(con, "select * from mart_conditional_convergence")
    }
    assert set(rows) == set(expected)
    for key, want in expected.items():
        row = rows[key]
        assert row["suite"] == lake.suite
        for column in ("n_params", "level_order", "n_contexts"):
            assert row[column] == want[column], (key, column)
        for column in ("expected_conv", "cross_entropy"):
            assert row[column] == pytest.approx(want[column]), (key, column)
        for column in ("conv_std", "conv_se"):
            assert row[column] == _approx_or_none(want[column]), (key, column)

    # every condition's levels are there: both frequency decades of the eval counts, several
    # tags, both word classes, and every final-surprisal bin, for the size whose final step is
    # extracted only
    levels = defaultdict(set)
    for size, _, condition, level in expected:
        levels[condition, size].add(level)
    assert levels["frequency_bin", "large"] == {"1–9", "10–99"}
    assert {"NN", ",", ".", "''", "``", "PRP$"} <= levels["pos", "large"]
    assert levels["word_class", "large"] == {"content", "function", "punctuation"}
    assert levels["final_surprisal_bin", "large"] == set(SURPRISAL_BIN_LABELS)
    assert levels["final_surprisal_bin", "small"] == set()


def test_conditional_convergence_by_frequency_bin_by_hand(eval_build, lake):
    """One cell written out: the contexts of types seen 10 to 99 times (12 + 10 tokens)."""
    con, _ = eval_build
    row = con.execute(
        "select n_contexts, expected_conv, level_order from mart_conditional_convergence "
        "where size = 'large' and step = 16 and condition = 'frequency_bin' and level = '10–99'"
    ).fetchone()
    mask = np.isin(lake.token_id, [100, 101])
    conv = conv_per_context(lake.kl["large", 16])
    assert row == (22, pytest.approx(conv[mask].mean()), 1)


def test_tag_outside_penn_tags_is_excluded(eval_build, lake):
    con, _ = eval_build
    assert "XX" in lake.pos and "XX" in lake.prev_pos
    levels = {r[0] for r in con.execute("select distinct level from mart_conditional_convergence").fetchall()}
    assert "XX" not in levels
    features = {r["position"]: r for r in _rows(con, "select * from int_token_features")}
    for position, (tag, prev_tag) in enumerate(zip(lake.pos, lake.prev_pos)):
        assert features[position]["pos"] == penn(tag)
        assert features[position]["pos_group"] == GROUP.get(penn(tag))
        assert features[position]["prev_pos"] == penn(prev_tag)
        assert features[position]["prev_pos_group"] == GROUP.get(penn(prev_tag))
        assert features[position]["word_class"] == WORD_CLASS.get(penn(tag))
        assert features[position]["prev_word_class"] == WORD_CLASS.get(penn(prev_tag))
    n_tagged = sum(penn(t) is not None for t in lake.pos)
    assert n_tagged < len(lake.pos) - lake.pos.count(None)  # XX tokens were dropped, not counted
    per_step = con.execute(
        "select size, step, sum(n_contexts) from mart_conditional_convergence where condition = 'pos' "
        "group by size, step"
    ).fetchall()
    assert len(per_step) == len(lake.partitions)
    assert {n for _, _, n in per_step} == {n_tagged}


def test_final_surprisal_bins_equal_hand_computation(eval_build, lake):
    con, _ = eval_build
    rows = {(r["size"], r["position"]): r for r in _rows(con, "select * from int_final_surprisal")}
    # small's final step (256) has data but no manifest: no size stands in an earlier step for it
    assert not final_step_extracted(lake, "small") and final_step_extracted(lake, "large")
    assert {size for size, _ in rows} == {"large"}
    assert len(rows) == lake.n_positions
    for position, value in enumerate(final_surprisal(lake, "large")):
        row = rows["large", position]
        order, label = surprisal_bin(value)
        assert row["final_step"] == lake.final_steps["large"]
        assert row["final_surprisal"] == pytest.approx(value)
        assert row["final_surprisal_bits"] == pytest.approx(value / math.log(2))
        assert (row["final_surprisal_bin_order"], row["final_surprisal_bin"]) == (order, label)


def test_final_steps_say_which_sizes_wait(eval_build, lake):
    con, _ = eval_build
    rows = {r["size"]: r for r in _rows(con, "select * from mart_final_steps")}
    small, large = rows["small"], rows["large"]
    assert (small["last_step"], small["final_step"], small["final_extracted"]) == (128, 256, False)
    assert small["final_surprisal_step"] is None and small["final_step_configured"]
    assert "step 256, not extracted yet" in small["status"]
    assert (large["final_step"], large["final_extracted"], large["final_surprisal_step"]) == (128, True, 128)
    assert large["status"] == "final checkpoint, step 128, extracted"


def test_frequency_features_count_the_eval_set(eval_build, lake):
    con, _ = eval_build
    frequency = eval_frequencies(lake)
    rows = _rows(
        con, "select position, token_id, frequency, frequency_bin_order, frequency_bin from int_token_features"
    )
    assert len(rows) == lake.n_positions
    for row in rows:
        f = int(frequency[row["position"]])
        assert row["token_id"] == lake.token_id[row["position"]]
        assert row["frequency"] == f
        assert row["frequency_bin"] == ("10–99" if f >= 10 else "1–9")
        assert row["frequency_bin_order"] == (1 if f >= 10 else 0)


def test_frequency_bin_labels_match_their_range(train_build, lake):
    """Training counts on the decade edges, labelled as the range they lie in (not a decade off)."""
    con, _ = train_build
    labels = dict(con.execute("select distinct token_id, frequency_bin from int_token_features").fetchall())
    by_count = {lake.unigram.get(token_id, 0): label for token_id, label in labels.items()}
    assert by_count == {
        0: "0",
        1: "1–9",
        2: "1–9",
        9: "1–9",
        10: "10–99",
        99: "10–99",
        100: "100–999",
        1000: "1,000–9,999",
        12345: "10,000–99,999",
        1_000_000: "1,000,000–9,999,999",
    }
    for count, label in by_count.items():
        assert label == frequency_label(count)
    orders = dict(con.execute("select distinct frequency, frequency_bin_order from int_token_features").fetchall())
    assert orders == {0: -1, 1: 0, 2: 0, 9: 0, 10: 1, 99: 1, 100: 2, 1000: 3, 12345: 4, 1_000_000: 6}


def test_conditional_convergence_with_train_frequencies(train_build, lake):
    con, _ = train_build
    frequency = np.array([lake.unigram.get(int(t), 0) for t in lake.token_id])
    expected = {k: v for k, v in expected_conditional(lake, frequency).items() if k[2] == "frequency_bin"}
    rows = {
        (r["size"], r["step"], r["condition"], r["level"]): r
        for r in _rows(con, "select * from mart_conditional_convergence where condition = 'frequency_bin'")
    }
    assert set(rows) == set(expected)
    for key, want in expected.items():
        assert rows[key]["n_contexts"] == want["n_contexts"]
        assert rows[key]["level_order"] == want["level_order"]
        assert rows[key]["expected_conv"] == pytest.approx(want["expected_conv"])


def test_regression_features(eval_build, train_build, lake):
    for (con, _), frequency in (
        (eval_build, eval_frequencies(lake)),
        (train_build, np.array([lake.unigram.get(int(t), 0) for t in lake.token_id])),
    ):
        rows = {(r["size"], r["step"], r["position"]): r for r in _rows(con, "select * from mart_regression_features")}
        assert len(rows) == len(lake.partitions) * lake.n_positions
        for size, step in lake.partitions:
            conv = conv_per_context(lake.kl[size, step])
            for position in range(lake.n_positions):
                row = rows[size, step, position]
                f = int(frequency[position])
                assert row["n_params"] == lake.sizes[size]
                assert row["token_id"] == lake.token_id[position]
                assert row["conv"] == pytest.approx(conv[position])
                assert row["log_frequency"] == (None if f == 0 else pytest.approx(math.log(f)))
                assert row["pos"] == penn(lake.pos[position])
                assert row["prev_pos"] == penn(lake.prev_pos[position])


def test_variance_of_convergence(eval_build, lake):
    con, _ = eval_build
    rows = {(r["size"], r["step"]): r for r in _rows(con, "select * from mart_expected_convergence")}
    assert set(rows) == set(lake.partitions)
    for key, kl in lake.kl.items():
        conv = conv_per_context(kl)
        assert rows[key]["conv_variance"] == pytest.approx(conv.var(ddof=1))
        assert rows[key]["conv_variance"] == pytest.approx(rows[key]["conv_std"] ** 2)


def expected_rankings(lake, min_count: int = 3) -> dict[str, list[tuple[int, float, int]]]:
    counts = Counter(lake.token_id.tolist())
    rankings = {}
    for size in lake.sizes:
        kl = lake.kl[size, last_step(lake)]
        ranked = sorted(
            (float(np.nanmean(kl[:, :, lake.token_id == t])), t, n) for t, n in counts.items() if n >= min_count
        )
        means = [m for m, _, _ in ranked]
        assert min(np.diff(means)) > 1e-9, "the lake must not tie two tokens"
        rankings[size] = [(t, m, n) for m, t, n in ranked]
    return rankings


def test_token_rankings_equal_hand_computation(eval_build, lake):
    con, _ = eval_build
    rows = _rows(con, "select * from mart_token_rankings order by size, rank")
    texts = {t: text for t, (text, _) in ANALYSIS_TOKENS.items()}
    # 7 ranked types, groups of 2: lowest 1-2, middle 3-4 (around the median rank 4), highest 6-7
    groups = {1: "lowest", 2: "lowest", 3: "middle", 4: "middle", 5: None, 6: "highest", 7: "highest"}
    for size, ranking in expected_rankings(lake).items():
        got = [r for r in rows if r["size"] == size]
        assert len(got) == len(ranking) == 7
        for rank, (row, (token_id, mean_kl, n)) in enumerate(zip(got, ranking), start=1):
            assert row["rank"] == rank
            assert row["token_id"] == token_id
            assert row["token_text"] == texts[token_id]
            assert row["n_occurrences"] == n == row["n_contexts"]
            assert row["mean_kl"] == pytest.approx(mean_kl)
            assert row["step"] == last_step(lake)
            assert row["n_params"] == lake.sizes[size]
            assert row["n_ranked"] == 7
            assert row["rank_group"] == groups[rank]


def test_token_rankings_default_group_size(train_build, lake):
    """At the default ranking_group_size (10) all 7 ranked types are the lowest 10."""
    con, _ = train_build
    rows = con.execute("select size, rank_group, count(*) from mart_token_rankings group by all").fetchall()
    assert sorted(rows) == [("large", "lowest", 7), ("small", "lowest", 7)]


def test_icl_scores_equal_hand_computation(eval_build, lake):
    con, _ = eval_build
    rows = {(r["size"], r["step"], r["seed"]): r for r in _rows(con, "select * from mart_icl_scores")}
    summary = {(r["size"], r["step"]): r for r in _rows(con, "select * from mart_icl_summary")}
    assert set(summary) == set(lake.partitions)  # not the partition without a manifest
    assert len(rows) == len(lake.partitions) * len(lake.seeds)
    for size, step in lake.partitions:
        diff = lake.icl_short[size, step] - lake.icl_long[size, step]  # [seed, sequence]
        n = diff.shape[1]
        for i, seed in enumerate(lake.seeds):
            row = rows[size, step, seed]
            assert row["n_params"] == lake.sizes[size]
            assert row["n_sequences"] == n
            assert (row["short_context"], row["long_context"], row["target_position"]) == (50, 400, 500)
            assert row["icl_score"] == pytest.approx(diff[i].mean())
            assert row["icl_score_se"] == pytest.approx(diff[i].std(ddof=1) / np.sqrt(n))
            assert row["mean_surprisal_short"] == pytest.approx(lake.icl_short[size, step][i].mean())
            assert row["mean_surprisal_long"] == pytest.approx(lake.icl_long[size, step][i].mean())
        per_seed = diff.mean(axis=1)
        row = summary[size, step]
        assert row["n_seeds"] == len(lake.seeds) and row["n_sequences"] == n
        assert row["icl_score"] == pytest.approx(per_seed.mean())
        assert row["icl_score_seed_std"] == pytest.approx(per_seed.std(ddof=1))
        assert row["icl_score_seed_se"] == pytest.approx(per_seed.std(ddof=1) / np.sqrt(len(lake.seeds)))


def test_partition_without_manifest_is_invisible(eval_build, lake):
    con, _ = eval_build
    size, step = lake.incomplete
    for relation, column in (
        ("stg_icl_scores", "step"),
        ("int_context_surprisal", "step"),
        ("mart_conditional_convergence", "step"),
        ("mart_regression_features", "step"),
        ("mart_icl_scores", "step"),
        ("int_final_surprisal", "final_step"),
        ("mart_token_rankings", "step"),
    ):
        n = con.execute(f"select count(*) from {relation} where size = ? and {column} = ?", [size, step]).fetchone()[0]
        assert n == 0, relation


def test_unknown_frequency_corpus_is_refused(tmp_path):
    proc = run_dbt(["parse", "--vars", "{frequency_corpus: wiki}"], tmp_path, tmp_path / "no-lake-here")
    assert proc.returncode != 0
    assert "frequency_corpus must be 'configured', 'eval' or 'train'" in proc.stdout + proc.stderr
