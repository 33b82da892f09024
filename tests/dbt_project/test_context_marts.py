"""mart_divergent_contexts and mart_divergent_context_predictions over a small lake: the
contexts ranked by mean KL, their text cut from the right window in the right order without the
target, each seed's top predictions as the lake holds them, N and the context's length from the
dbt vars, and a lake written before the vocabulary existed."""

from __future__ import annotations

import json
import shutil

import duckdb
import numpy as np
import pytest

from extract.inputs.eval_tokens import window_spans
from extract.registry import TABLES
from reports.dbt_vars import dbt_vars
from tests.helpers.dbt import run_dbt
from tests.helpers.lakes import (
    make_manifest,
    pair_kl_rows,
    write_checkpoint,
    write_eval_documents,
    write_eval_tokens,
    write_vocabulary,
)

SUITE = "mini"
SIZE, N_PARAMS = "tiny", 4_321
STEPS = (1, 64)
SEEDS = (1, 2, 3)
WINDOW = 4
OVERLAPPING = 2  # a stride for windows that overlap: each scores its last 2 tokens after the first
WORDS = [" The", " jury", " said", " it", " did", " find", " no", " evidence", " that", " any", " irregularities", "."]
N_POSITIONS = len(WORDS)
VOCABULARY = {token_id: f" w{token_id}" for token_id in range(40)} | {7: "\n"}  # a newline among them
TOP_K = 4
# only the contexts marts and what they read; tests that also read other models stay out
SELECT = ["--select", "+path:models/contexts", "--indirect-selection", "cautious"]


def context_lens(stride: int) -> list[int]:
    """Each position's context length, windows of WINDOW every `stride` tokens, as the eval set cuts them."""
    return [
        index - start for start, first, end in window_spans(N_POSITIONS, WINDOW, stride) for index in range(first, end)
    ]


def write_document(lake, stride: int) -> None:
    """eval_documents and eval_tokens: one document of WORDS in windows of WINDOW every `stride`."""
    text = "".join(WORDS)
    write_eval_documents(
        lake, {"eval_set": ["brown-heldout"], "doc_id": ["ca01"], "category": ["news"], "text": [text]}
    )
    starts = np.cumsum([0] + [len(word) for word in WORDS[:-1]]).tolist()
    window_ids = [
        w for w, (_, first, end) in enumerate(window_spans(N_POSITIONS, WINDOW, stride)) for _ in range(first, end)
    ]
    rows = {
        "eval_set": ["brown-heldout"] * N_POSITIONS,
        "position": list(range(N_POSITIONS)),
        "doc_id": ["ca01"] * N_POSITIONS,
        "window_id": window_ids,
        "token_id": [100 + p for p in range(N_POSITIONS)],
        "token_text": list(WORDS),
        "char_start": starts,
        "char_end": [start + len(word) for start, word in zip(starts, WORDS)],
        "context_len": context_lens(stride),
    }
    write_eval_tokens(lake, SUITE, rows)


def write_lake(lake, stride: int = WINDOW, rng_seed: int = 3) -> dict:
    """One document of N_POSITIONS tokens in windows of WINDOW every `stride`, one size at two
    steps; per partition the pair KLs (distinct per position, so the ranking has no ties) and
    each seed's top-k. Returns {step: (kl [seeds, seeds, positions], topk_ids, topk_logprobs, surprisal)}."""
    rng = np.random.default_rng(rng_seed)
    write_document(lake, stride)
    write_vocabulary(lake, SUITE, VOCABULARY)
    written = {}
    for step in STEPS:
        position_kl = rng.permutation(N_POSITIONS) / 4.0 + 0.25
        kl = np.full((len(SEEDS), len(SEEDS), N_POSITIONS), np.nan)
        for i in range(len(SEEDS)):
            for j in range(len(SEEDS)):
                if i != j:
                    kl[i, j] = position_kl + (i + 2 * j) / 64.0
        topk_ids = np.array([[rng.choice(len(VOCABULARY), TOP_K, replace=False) for _ in WORDS] for _ in SEEDS])
        topk_logprobs = -np.sort(rng.integers(1, 64, size=(len(SEEDS), N_POSITIONS, TOP_K)) / 16.0, axis=2)
        surprisal = rng.integers(1, 64, size=(len(SEEDS), N_POSITIONS)) / 8.0
        stats = {name: [] for name in TABLES["token_stats"].schema.names}
        for i, seed in enumerate(SEEDS):
            for position in range(N_POSITIONS):
                stats["seed"].append(seed)
                stats["position"].append(position)
                for name in ("surprisal", "entropy", "kl_uniform", "kl_unigram"):
                    stats[name].append(float(surprisal[i, position]))
                stats["tail_mass"].append(0.0)
                stats["topk_ids"].append([int(t) for t in topk_ids[i, position]])
                stats["topk_logprobs"].append([float(v) for v in topk_logprobs[i, position]])
        pair_kl = pair_kl_rows(kl, SEEDS)
        manifest = make_manifest(
            SUITE,
            SIZE,
            step,
            n_params=N_PARAMS,
            seeds=list(SEEDS),
            n_token_stats=len(stats["seed"]),
            n_pair_kl=len(pair_kl["kl"]),
        )
        write_checkpoint(lake, SUITE, SIZE, step, token_stats=stats, pair_kl=pair_kl, manifest=manifest)
        written[step] = (kl, topk_ids, topk_logprobs, surprisal)
    return written


def build(workdir, lake, variables: str | None = None):
    proc = run_dbt(["build", *SELECT, *(["--vars", variables] if variables else [])], workdir, lake)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    return duckdb.connect(str(workdir / "seedconv.duckdb"), read_only=True)


def rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def lake_and_build(tmp_path_factory):
    """The lake, built with N = 3 contexts and 2 context tokens shown."""
    workdir = tmp_path_factory.mktemp("contexts")
    written = write_lake(workdir / "lake")
    con = build(workdir, workdir / "lake", "{divergent_contexts_n: 3, divergent_context_tokens: 2}")
    yield written, con
    con.close()


def test_the_contexts_with_the_largest_mean_kl_are_ranked_with_their_text(lake_and_build):
    written, con = lake_and_build
    got = rows(con, "select * from mart_divergent_contexts order by step, rank")
    assert {row["step"] for row in got} == set(STEPS)
    for step in STEPS:
        kl = written[step][0]
        mean_kl = np.nanmean(kl.reshape(-1, N_POSITIONS), axis=0)  # over the 6 ordered pairs
        expected = np.argsort(-mean_kl, kind="stable")[:3]
        mine = [row for row in got if row["step"] == step]
        assert [row["position"] for row in mine] == expected.tolist()
        assert [row["rank"] for row in mine] == [1, 2, 3]
        for row in mine:
            position = row["position"]
            context_len = position % WINDOW  # the window's tokens before the target: none at 0, 4 and 8
            shown = min(2, context_len)
            assert (row["suite"], row["size"], row["n_params"], row["n_pairs"]) == (SUITE, SIZE, N_PARAMS, 6)
            assert row["mean_kl"] == pytest.approx(mean_kl[position])
            assert (row["context_len"], row["context_tokens_shown"]) == (context_len, shown)
            assert row["context_text"] == "".join(WORDS[position - shown : position])
            assert (row["target_text"], row["target_token_id"]) == (WORDS[position], 100 + position)


def test_each_seeds_top_predictions_are_the_lakes_with_their_text(lake_and_build):
    written, con = lake_and_build
    got = rows(con, "select * from mart_divergent_context_predictions order by step, rank, seed")
    assert len(got) == len(STEPS) * 3 * len(SEEDS)
    for row in got:
        _, topk_ids, topk_logprobs, surprisal = written[row["step"]]
        i = SEEDS.index(row["seed"])
        ids = topk_ids[i, row["position"]][:3].tolist()
        assert row["top_token_ids"] == ids
        assert row["top_token_texts"] == [VOCABULARY[t] for t in ids]
        assert row["top_probabilities"] == pytest.approx(np.exp(topk_logprobs[i, row["position"]][:3]).tolist())
        assert row["target_probability"] == pytest.approx(np.exp(-surprisal[i, row["position"]]))


@pytest.fixture(scope="module")
def old_lake_build(tmp_path_factory):
    """The same lake, its windows overlapping, written before the vocabulary table existed, built
    with the project's vars."""
    workdir = tmp_path_factory.mktemp("contexts_old_lake")
    lake = workdir / "lake"
    write_lake(lake, stride=OVERLAPPING)
    shutil.rmtree(lake / "vocabulary")
    con = build(workdir, lake)
    yield con
    con.close()


def test_context_text_is_what_an_overlapping_window_fed_the_model(old_lake_build):
    """At every position (the default N keeps them all): the window's tokens before the target, in
    order, also those the window before scored (rows of another window_id)."""
    got = old_lake_build.execute(
        "select position, context_len, context_text from mart_divergent_contexts where step = 1"
    ).fetchall()
    assert sorted(position for position, _, _ in got) == list(range(N_POSITIONS))
    lens = context_lens(OVERLAPPING)
    assert max(lens) == WINDOW - 1 and min(lens[WINDOW:]) == WINDOW - OVERLAPPING  # the layout is what it says
    for position, context_len, text in got:
        assert context_len == lens[position]
        assert text == "".join(WORDS[position - lens[position] : position])


def test_defaults_from_the_project_and_a_lake_without_vocabulary(old_lake_build):
    """Without --vars, N, the tokens shown and the predictions kept are dbt_project.yml's; a lake
    written before the vocabulary table builds, its predictions without text."""
    con, defaults = old_lake_build, dbt_vars()
    per_step = dict(con.execute("select step, count(*) from mart_divergent_contexts group by step").fetchall())
    longest = con.execute("select max(context_tokens_shown) from mart_divergent_contexts").fetchone()[0]
    n_rows, n_texts, n_predictions = con.execute(
        "select count(*), count(*) filter (where list_count(top_token_texts) > 0), max(len(top_token_ids)) "
        "from mart_divergent_context_predictions"
    ).fetchone()
    assert per_step == {step: min(defaults["divergent_contexts_n"], N_POSITIONS) for step in STEPS}
    assert longest == min(defaults["divergent_context_tokens"], WINDOW - 1)
    assert n_rows == len(STEPS) * len(SEEDS) * per_step[STEPS[0]]
    assert n_texts == 0  # list_count counts the non-NULL elements
    assert n_predictions == min(defaults["divergent_context_predictions"], TOP_K)


def test_the_reports_query_runs_as_it_is_on_the_built_marts(lake_and_build, old_lake_build):
    """The report's query file on both warehouses: each size's last step, each seed's top
    predictions as text, or as ids where the lake has no vocabulary."""
    from reports.figures import DIVERGENT_CONTEXTS
    from reports.page import divergent_contexts_section

    _, con = lake_and_build
    with_text = con.execute(DIVERGENT_CONTEXTS.sql).df()
    without_text = old_lake_build.execute(DIVERGENT_CONTEXTS.sql).df()
    assert set(with_text["step"]) == set(without_text["step"]) == {max(STEPS)}
    assert len(with_text) == 3 * len(SEEDS)
    first = con.execute(
        "select top_token_texts[1], top_probabilities[1] from mart_divergent_context_predictions "
        f"where step = {max(STEPS)} and rank = 1 and seed = {SEEDS[0]}"
    ).fetchone()
    assert with_text.iloc[0]["top_predictions"].startswith(f"{json.dumps(first[0])} {first[1]:.2f} · ")
    assert all(text.startswith("#") for text in without_text["top_predictions"])
    section = divergent_contexts_section(with_text.drop(columns="suite"), "c", DIVERGENT_CONTEXTS.sql, "m")
    assert section.count("<mark>") == 3
