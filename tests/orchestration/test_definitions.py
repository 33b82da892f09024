"""The whole pipeline through Dagster on the micro suite, and the sensor and schedule."""

import html
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_dbt import DbtCliResource, DbtProject

from extract.lake.checks import MANIFESTS
from extract.lake.tables import checkpoint_dir
from extract.registry import PARTITION_TABLES
from extract.sources.suites import partition_key
from orchestration.definitions import defs
from orchestration.defs.dbt_warehouse import (
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    ensure_manifest,
    manifest_is_stale,
    warehouse_models,
)
from orchestration.defs.lake_scrub import repair_damaged
from orchestration.defs.report_assets import report_page
from orchestration.defs.resources import SeedconvSettings
from orchestration.defs.schedules import extraction_is_newer, refresh_warehouse
from orchestration.defs.sensors import HUB_INTERVAL_S, new_checkpoints
from reports.figures import DIVERGENT_CONTEXTS, FIGURES, TABLES, TOKEN_RANKINGS


@pytest.fixture(scope="module")
def materialized(micro_settings, micro_config_path, tmp_path_factory):
    """Every asset materialized from the command-line entry point into a fresh instance."""
    from orchestration.materialize import materialize_all

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEEDCONV_CONFIG", str(micro_config_path))
        patch.setenv("SEEDCONV_WAREHOUSE", str(micro_settings.paths.root))
        with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster"))) as instance:
            materialize_all(instance, log=lambda message: None)
            yield instance


def test_definitions_load_with_one_lineage_graph():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {
        "brown_corpus",
        "pos_tagger",
        "mini_suite",
        "eval_tokens",
        "unigram",
        "token_stats",
        "pair_kl",
        "token_pos",
        "icl_scores",
        "mart_expected_convergence",
        "mart_conditional_convergence",
        "regression_coefficients",
        "published_warehouse",
        "fehlauer_fig1_convergence",
        "vocabulary",
        "mart_divergent_contexts",
        "divergent_contexts_table",
        "report_page",
    } <= keys
    # From checkpoint to figure, one edge at a time: a figure's parents are the marts its query
    # reads, and the published copy it reads them from.
    upstream = {k.to_user_string() for k in graph.get(dg.AssetKey("fehlauer_fig1_convergence")).parent_keys}
    assert upstream == {
        "published_warehouse",
        "mart_expected_convergence",
        "mart_model_stats",
        "mart_icl_summary",
        "convergence_phases",
        "convergence_intervals",
    }
    loglik_map = {k.to_user_string() for k in graph.get(dg.AssetKey("kishino_model_map")).parent_keys}
    assert loglik_map == {"published_warehouse", "loglik_analysis"}  # the asset that writes its table
    # Each dbt model sits in the group of its topic folder.
    assert graph.get(dg.AssetKey("mart_expected_convergence")).group_name == "convergence"
    assert graph.get(dg.AssetKey("mart_blimp_paradigm")).group_name == "blimp"
    assert graph.get(dg.AssetKey("mart_kl_distribution")).group_name == "distribution"
    kl_distribution = {k.to_user_string() for k in graph.get(dg.AssetKey("ours_kl_distribution")).parent_keys}
    assert kl_distribution == {"published_warehouse", "mart_kl_distribution"}
    pair_distribution = {k.to_user_string() for k in graph.get(dg.AssetKey("int_pair_distribution")).parent_keys}
    assert pair_distribution == {"stg_pair_kl", "stg_token_stats"}
    assert graph.get(dg.AssetKey("mart_divergent_contexts")).group_name == "contexts"
    contexts_parents = {k.to_user_string() for k in graph.get(dg.AssetKey("divergent_contexts_table")).parent_keys}
    assert contexts_parents == {"published_warehouse", "mart_divergent_contexts", "mart_divergent_context_predictions"}
    vocabulary_readers = {k.to_user_string() for k in graph.get(dg.AssetKey("stg_vocabulary")).parent_keys}
    assert vocabulary_readers == {"vocabulary"}
    publish_parents = {k.to_user_string() for k in graph.get(dg.AssetKey("published_warehouse")).parent_keys}
    analyses = {"regression_coefficients", "loglik_analysis", "convergence_phases", "convergence_intervals"}
    assert analyses <= publish_parents
    intervals_parents = {k.to_user_string() for k in graph.get(dg.AssetKey("convergence_intervals")).parent_keys}
    assert intervals_parents == {"int_pair_window_kl", "mart_expected_convergence"}
    phases_parents = {k.to_user_string() for k in graph.get(dg.AssetKey("convergence_phases")).parent_keys}
    assert phases_parents == {"mart_expected_convergence", "int_pair_convergence"}
    mart_parents = {k.to_user_string() for k in graph.get(dg.AssetKey("int_context_convergence")).parent_keys}
    assert mart_parents == {"stg_pair_kl"}
    staging_parents = {k.to_user_string() for k in graph.get(dg.AssetKey("stg_pair_kl")).parent_keys}
    assert staging_parents == {"pair_kl", "stg_checkpoints"}
    extraction_parents = {k.to_user_string() for k in graph.get(dg.AssetKey("pair_kl")).parent_keys}
    assert extraction_parents == {
        "mini_suite",
        "eval_tokens",
        "unigram",
        "token_frequency",
        "icl_sequences",
        "fingerprint_probes",
        "loglik_texts",
        "blimp_pairs",
    }
    blimp_parents = {k.to_user_string() for k in graph.get(dg.AssetKey("stg_blimp_scores")).parent_keys}
    assert blimp_parents == {"blimp_scores", "stg_checkpoints"}


def test_end_to_end_warehouse(materialized, micro_settings):
    partitions = set(materialized.get_materialized_partitions(dg.AssetKey("pair_kl")))
    steps = (0, 1, 2, 4, 8)
    assert partitions == {partition_key("micro", size, step) for size in "ab" for step in steps} | {
        partition_key("micro-mlm", "a", step) for step in steps
    }
    # Every table of a partition is materialized with it, a masked LM's ICL table too (0 rows).
    for table in (*(table.name for table in PARTITION_TABLES), MANIFESTS):
        assert set(materialized.get_materialized_partitions(dg.AssetKey(table))) == partitions, table
    masked_icl = materialized.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey("icl_scores"), asset_partitions=[partition_key("micro-mlm", "a", 8)]), limit=1
    ).records[0]
    assert masked_icl.asset_materialization.metadata["rows"].value == 0

    with duckdb.connect(str(micro_settings.paths.published_duckdb), read_only=True) as connection:
        rows = connection.execute(
            "select size, step, n_seeds, n_pairs, n_contexts, expected_conv, band_low, band_high "
            "from mart_expected_convergence where suite = 'micro' order by size, step"
        ).fetchall()
        stats = connection.execute(
            "select count(*), min(cross_entropy) from mart_model_stats where suite = 'micro'"
        ).fetchone()
        suites = connection.execute("select suite, objective, n_checkpoints from mart_suites order by suite").fetchall()
        masked = connection.execute(
            "select count(*), max(expected_conv) from mart_expected_convergence where suite = 'micro-mlm'"
        ).fetchone()
        blimp = connection.execute(
            "select suite, count(*), min(n_paradigms), min(accuracy), max(accuracy), max(expected_conv) "
            "from mart_blimp_convergence group by suite"
        ).fetchall()
        masked_tables = connection.execute(
            "select (select count(*) from mart_icl_scores where suite = 'micro-mlm'), "
            "(select count(*) from mart_loglik_kl where suite = 'micro-mlm')"
        ).fetchone()
        (tags,) = connection.execute(
            "select tags from duckdb_databases() where database_name = current_database()"
        ).fetchone()
    assert suites == [("micro", "causal", 10), ("micro-mlm", "masked", 5)]
    assert masked[0] == 5 and masked[1] < 0
    # BLiMP for the causal suite only: every checkpoint, every paradigm of the slim copy
    ((suite, n_rows, n_paradigms, low, high, conv),) = blimp
    assert (suite, n_rows, n_paradigms) == ("micro", 10, 67)
    assert 0 <= low <= high <= 1 and conv <= 0
    assert masked_tables == (0, 0)
    assert tags["storage_version"].startswith("v1.0.0"), "older DuckDB clients must open the file"
    assert len(rows) == 10
    for size, step, n_seeds, n_pairs, n_contexts, conv, low, high in rows:
        assert (n_seeds, n_pairs, n_contexts) == (3, 6, micro_settings.eval.n_tokens)
        assert conv < 0 and low <= conv <= high
    assert stats[0] == 10 and stats[1] > 0


def test_the_phases_table_on_the_micro_suites(materialized, micro_settings):
    """Four turning points per size, each at a checkpoint step of its curve or NULL with the
    reason, from the published warehouse's own curves by analysis/phases.py's rule."""
    from analysis.phases import LOCATED, TURNING_POINTS, locate_turning_points

    with duckdb.connect(str(micro_settings.paths.published_duckdb), read_only=True) as connection:
        table = connection.execute("select * from convergence_phases order by suite, n_params, turning_order").df()
        curves = connection.execute("select suite, size, step, expected_conv from mart_expected_convergence").df()
    sizes = [("micro", "a"), ("micro", "b"), ("micro-mlm", "a")]
    assert sorted(set(zip(table["suite"], table["size"]))) == sizes
    assert list(table["turning_point"]) == list(TURNING_POINTS) * 3
    assert (table["n_seed_pairs"] == 3).all(), "3 seeds: 3 pairs, each once"
    assert (table["last_step"] == 8).all() and (table["n_steps"] == 5).all()
    for (suite, size), rows in table.groupby(["suite", "size"]):
        curve = curves[(curves["suite"] == suite) & (curves["size"] == size)]
        expected = locate_turning_points(curve["step"], curve["expected_conv"])
        for row in rows.itertuples():
            assert row.status == expected[row.turning_point].status, (suite, size, row.turning_point)
            if row.status == LOCATED:
                assert row.step == expected[row.turning_point].step and row.step in (0, 1, 2, 4, 8)
                assert pd.isna(row.reason) and row.n_pairs_located >= 1
            else:
                assert pd.isna(row.step) and row.reason == expected[row.turning_point].reason


def test_trajectory_and_layer_marts_on_the_micro_suites(materialized, micro_settings):
    """The new marts from the micro suites' own lake: the lens at the last layer is the output's
    E[conv], each seed's trajectory statistics are its rows', the previous checkpoint is marked,
    and an exponent is fitted from anchor 0 (4 later checkpoints), the one anchor the micro suite has."""
    from extract.lake.tables import checkpoint_dir

    with duckdb.connect(str(micro_settings.paths.published_duckdb), read_only=True) as connection:
        layers = connection.execute(
            "select l.suite, l.size, l.step, l.layer, l.n_layers, l.expected_conv, l.kl_to_final, "
            "e.expected_conv as output_conv "
            "from mart_layer_convergence l join mart_expected_convergence e using (suite, size, step)"
        ).df()
        trajectory = connection.execute("select * from mart_trajectory_kl where suite = 'micro'").df()
        movement = connection.execute("select * from mart_trajectory_movement where suite = 'micro'").df()
        tokens = connection.execute("select * from mart_trajectory_token_movement where suite = 'micro'").df()
        exponents = connection.execute("select * from trajectory_exponents").df()
    assert set(zip(layers["suite"], layers["size"])) == {("micro", "a"), ("micro", "b"), ("micro-mlm", "a")}
    last = layers[layers["layer"] == layers["n_layers"]]
    assert len(last) == 15 and len(layers) == 30  # 1 layer: the embeddings and the output, 15 checkpoints
    np.testing.assert_allclose(last["expected_conv"], last["output_conv"], rtol=1e-5)
    assert (last["kl_to_final"].abs() < 1e-5).all() and (layers[layers["layer"] == 0]["kl_to_final"] > 0).all()

    lake = micro_settings.paths.lake
    rows = pd.read_parquet(checkpoint_dir(lake, "micro", "b", 8) / "trajectory_kl.parquet")
    for seed, from_step in ((1, 0), (3, 4)):
        ours = rows[(rows["seed"] == seed) & (rows["from_step"] == from_step)]
        mart = trajectory[(trajectory["size"] == "b") & (trajectory["step"] == 8) & (trajectory["seed"] == seed)]
        mart = mart[mart["from_step"] == from_step].iloc[0]
        assert mart["kl_mean"] == pytest.approx(ours["kl_later_earlier"].mean(), rel=1e-6)
        assert mart["kl_reverse_mean"] == pytest.approx(ours["kl_earlier_later"].mean(), rel=1e-6)
        assert mart["n_contexts"] == micro_settings.eval.n_tokens
        assert mart["is_previous"] == (from_step == 4)
    assert sorted(movement[movement["size"] == "a"]["step"]) == [1, 2, 4, 8]
    assert (movement["kl_mean"] > 0).all() and (movement["seed_pair_kl"] > 0).all()
    assert tokens["n_moves"].sum() == 2 * 4 * 3 * micro_settings.eval.n_tokens  # sizes x steps x seeds x tokens

    micro = exponents[exponents["suite"] == "micro"]
    assert set(micro["anchor_step"]) == {0} and len(micro) == 2 * 3  # 2 sizes x 3 seeds
    assert (micro["n_points"] == 4).all() and np.isfinite(micro["exact_exponent"]).all()
    assert (micro["exact_exponent_low"] <= micro["exact_exponent"]).all()
    assert (micro["exact_exponent"] <= micro["exact_exponent_high"]).all()
    assert micro["llv_exponent"].notna().all() and micro["weight_exponent"].notna().all()


def test_lake_checks_pass_after_extraction(materialized):
    from extract.lake.checks import CHECKS

    for asset, checks in CHECKS.items():
        for name in checks:
            record = materialized.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey(asset), name))
            assert record is not None and record.evaluation.passed, (asset, name)
            assert record.evaluation.metadata["partitions_checked"].value >= 5


def test_figures_and_report_page(materialized, micro_settings):
    drawn = {
        "micro": [spec for spec in FIGURES if spec.applies_to("causal")],
        "micro-mlm": [spec for spec in FIGURES if spec.applies_to("masked")],
    }
    for suite, specs in drawn.items():
        for spec in FIGURES:
            png = micro_settings.paths.reports / suite / f"{spec.name}.png"
            event = materialized.get_latest_materialization_event(dg.AssetKey(spec.name))
            metadata = event.asset_materialization.metadata
            if spec in specs:
                assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", (suite, spec.name)
                assert "data:image/png;base64," in metadata[f"{suite}_figure"].value
            else:
                assert not png.exists() and f"{suite}_figure" not in metadata, (suite, spec.name)

    page = (micro_settings.paths.reports / "report.html").read_text()
    assert page.count("data:image/png;base64,") == sum(len(specs) for specs in drawn.values())
    assert all(html.escape(spec.title) in page for spec in FIGURES)
    assert "Figure 2, right (Fehlauer et al. 2025): masked-LM convergence over training (micro-mlm)" in page
    assert "Figure 2, left (Fehlauer et al. 2025): convergence on BLiMP minimal pairs (micro)" in page
    assert "Table 1" in page and "lowest mean KL" in page
    # Every figure and table section carries its query, collapsed, as it runs in `make sql`.
    queries = [*(spec.sql for spec in FIGURES), *(spec.sql for spec in TABLES), TOKEN_RANKINGS.sql]
    assert all(html.escape(sql.strip()) in page for sql in [*queries, DIVERGENT_CONTEXTS.sql])
    n_sections = page.count("<section id=")
    assert page.count('<details class="sql"><summary>SQL</summary>') == n_sections
    # The most divergent contexts, per suite, with the target marked and each seed's predictions.
    for suite in drawn:
        contexts = pd.read_csv(micro_settings.paths.reports / suite / f"{DIVERGENT_CONTEXTS.name}.csv")
        assert len(contexts) > 0 and html.escape(f"The contexts where the seeds disagree most ({suite})") in page
    assert page.count("<mark>") >= 2
    # McEntire's tables, for both suites: the causal micro suite's 8 steps have no two checkpoints
    # the default gap of 50 apart, so its regime tables hold the log-spaced measure only
    for spec in TABLES:
        assert html.escape(f"{spec.title} (micro)") in page and html.escape(f"{spec.title} (micro-mlm)") in page
        metadata = materialized.get_latest_materialization_event(dg.AssetKey(spec.name)).asset_materialization.metadata
        assert {"micro_table", "micro-mlm_table"} <= set(metadata), spec.name
    shares = pd.read_csv(micro_settings.paths.reports / "micro" / "mcentire_table3_regime_share.csv")
    assert list(shares["comparison"].unique()) == ["log_spaced"] and len(shares) == 2
    assert materialized.get_latest_materialization_event(report_page.key) is not None

    with duckdb.connect(str(micro_settings.paths.published_duckdb), read_only=True) as connection:
        terms = {row[0] for row in connection.execute("select distinct term from regression_coefficients").fetchall()}
    assert {"Intercept", "log_frequency", "size=b"} <= terms


def test_the_fixed_gap_measure_on_the_micro_suite(materialized, micro_settings, tmp_path):
    """The micro suite's checkpoints (0, 1, 2, 4, 8) allow a gap of 4, given as its own in
    regime_suites: the fingerprint marts rebuilt from its lake compare 4 with 0 and 8 with 4,
    each the cosine of the two concatenated fingerprints the extraction wrote."""
    import numpy as np
    import pyarrow.parquet as pq

    from tests.helpers.dbt import run_dbt

    lake = micro_settings.paths.lake
    variables = "{regime_suites: {micro: {regime_gap: 4}}}"
    proc = run_dbt(["run", "--select", "+path:models/fingerprints", "--vars", variables], tmp_path, lake)
    assert proc.returncode == 0, proc.stdout[-4000:]

    def fingerprint(size: str, step: int, seed: int) -> np.ndarray:
        rows = pq.read_table(checkpoint_dir(lake, "micro", size, step) / "fingerprints.parquet").to_pandas()
        rows = rows[rows["seed"] == seed].sort_values("probe_id")
        return np.concatenate([np.asarray(f, dtype=np.float64) for f in rows["fingerprint"]])

    with duckdb.connect(str(tmp_path / "seedconv.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            "select size, seed, step, prev_step, similarity_prev from mart_fingerprint_similarity "
            "where suite = 'micro' and comparison = 'fixed_gap' order by size, seed, step"
        ).fetchall()
        shares = connection.execute(
            "select size, n_checkpoints, share_unclassified from mart_mcentire_table3_regime_share "
            "where suite = 'micro' and comparison = 'fixed_gap' order by size"
        ).fetchall()
    assert [(size, seed, step, prev) for size, seed, step, prev, _ in rows] == [
        (size, seed, step, prev) for size in "ab" for seed in (1, 2, 3) for step, prev in ((0, None), (4, 0), (8, 4))
    ]
    for size, seed, step, prev, similarity in rows:
        if prev is None:
            assert similarity is None
            continue
        a, b = fingerprint(size, step, seed), fingerprint(size, prev, seed)
        assert similarity == pytest.approx(a @ b / np.sqrt((a @ a) * (b @ b)), rel=1e-9)
    assert shares == [("a", 3, pytest.approx(1 / 3)), ("b", 3, pytest.approx(1 / 3))]


def test_second_run_extracts_nothing_new(materialized, micro_settings):
    from orchestration.materialize import extraction_ranges

    assert extraction_ranges(materialized, micro_settings) == []
    # --all: every checkpoint again, in one range (the partition order has no gap)
    assert extraction_ranges(materialized, micro_settings, every_partition=True) == [
        (partition_key("micro", "a", 0), partition_key("micro-mlm", "a", 8))
    ]


@pytest.fixture
def sensor_settings(micro_settings, micro_config_path, tmp_path):
    """A warehouse of its own holding a copy of the micro suite, for the sensor to watch."""
    shutil.copytree(micro_settings.paths.suites, tmp_path / "suites")
    return SeedconvSettings(config_path=str(micro_config_path), warehouse_root=str(tmp_path))


def test_sensor_requests_new_checkpoints_once(sensor_settings):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"seedconv": sensor_settings})
        first = new_checkpoints(context)
        keys = [request.partition_key for request in first.run_requests]
        # both mini suites: the causal one's 2 sizes and the masked one's 1, at 5 steps each
        assert len(keys) == 15 and keys[0] == "micro|a|step0" and "micro-mlm|a|step8" in keys
        assert first.dynamic_partitions_requests[0].partition_keys == keys

        instance.add_dynamic_partitions("checkpoints", keys)
        assert new_checkpoints(context).skip_reason is not None

        # A training run drops step 16 for every seed of size a; only seed 1 at first.
        suite = sensor_settings.load().paths.suites / "micro"
        shutil.copytree(suite / "a-seed1" / "step8", suite / "a-seed1" / "step16")
        assert new_checkpoints(context).skip_reason is not None
        for seed in (2, 3):
            shutil.copytree(suite / f"a-seed{seed}" / "step8", suite / f"a-seed{seed}" / "step16")
        later = new_checkpoints(context)
        assert [request.partition_key for request in later.run_requests] == ["micro|a|step16"]
        instance.add_dynamic_partitions("checkpoints", ["micro|a|step16"])

        # Seeds 1 and 3 write step 32; seed 2 may still be writing it, so the step waits ...
        for seed in (1, 3):
            shutil.copytree(suite / f"a-seed{seed}" / "step8", suite / f"a-seed{seed}" / "step32")
        assert new_checkpoints(context).skip_reason is not None
        # ... until seed 2 writes step 64 without step 32: it went past it, so step 32 is complete
        # with seeds 1 and 3, and step 64 waits for them.
        shutil.copytree(suite / "a-seed2" / "step8", suite / "a-seed2" / "step64")
        gap = new_checkpoints(context)
        assert [request.partition_key for request in gap.run_requests] == ["micro|a|step32"]


def test_schedule_waits_for_new_extractions():
    assert extraction_is_newer(10.0, None)
    assert extraction_is_newer(10.0, 5.0)
    assert not extraction_is_newer(5.0, 10.0)
    assert not extraction_is_newer(None, None)
    with dg.instance_for_test() as instance:
        result = refresh_warehouse(dg.build_schedule_context(instance=instance))
        assert isinstance(result, dg.SkipReason)


def test_a_dbt_manifest_older_than_a_model_is_stale(tmp_path):

    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "m.sql"
    model.write_text("select 1")
    manifest = tmp_path / "target" / "manifest.json"
    assert manifest_is_stale(tmp_path, manifest)
    manifest.parent.mkdir()
    manifest.write_text("{}")
    os.utime(model, (1, 1))
    assert not manifest_is_stale(tmp_path, manifest)
    model.write_text("select 2")
    assert manifest_is_stale(tmp_path, manifest)


def test_processes_importing_at_once_parse_the_project_once(tmp_path):
    """Three importers of a fresh clone at once (as pytest's workers are): one parses, the others
    wait for it, and the manifest they all read is whole."""
    project_dir = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    project = DbtProject(project_dir=project_dir, profiles_dir=project_dir)
    real = DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE)
    parses = []

    class CountingResource:
        def cli(self, args, **kwargs):
            parses.append(args)
            return real.cli(args, **kwargs)

    with ThreadPoolExecutor(3) as pool:
        for done in [pool.submit(ensure_manifest, project, CountingResource()) for _ in range(3)]:
            done.result()
    assert len(parses) == 1
    manifest = json.loads(project.manifest_path.read_text())
    assert "model.seedconv.mart_expected_convergence" in manifest["nodes"]


def test_a_new_checkpoint_runs_alone_and_brings_the_marts_up_to_date(
    materialized, micro_settings, micro_config_path, tmp_path, monkeypatch
):
    """A training run drops a new step into a suite the warehouse is current with: the sensor
    requests that partition alone, the schedule then rebuilds the marts, and only the new
    partition's rows are built (the other partitions' rows and build records are unchanged)."""
    root = tmp_path / "warehouse"
    shutil.copytree(micro_settings.paths.root, root, ignore=shutil.ignore_patterns("reports", "published"))
    monkeypatch.setenv("SEEDCONV_CONFIG", str(micro_config_path))
    monkeypatch.setenv("SEEDCONV_WAREHOUSE", str(root))

    def marts() -> tuple[set, dict]:
        with duckdb.connect(str(root / "seedconv.duckdb"), read_only=True) as connection:
            found = connection.execute("select * exclude (conv_se) from mart_expected_convergence").fetchall()
            # seeds and seeds_missing are lists, which a set cannot hold
            rows = {tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in found}
            built = connection.execute(
                "select model || ' ' || suite || '|' || size || '|step' || step, built_at from incremental_partitions"
            ).fetchall()
        return rows, dict(built)

    rows_before, built_before = marts()
    new_key = partition_key("micro", "a", 16)
    with dg.instance_for_test() as instance:
        known = [key for key in materialized.get_dynamic_partitions("checkpoints")]
        instance.add_dynamic_partitions("checkpoints", known)
        suite = root / "suites" / "micro"
        for seed in (1, 2, 3):
            shutil.copytree(suite / f"a-seed{seed}" / "step8", suite / f"a-seed{seed}" / "step16")

        context = dg.build_sensor_context(instance=instance, resources={"seedconv": SeedconvSettings()})
        requests = new_checkpoints(context)
        assert [request.partition_key for request in requests.run_requests] == [new_key]
        instance.add_dynamic_partitions("checkpoints", [new_key])
        extraction_job = defs.resolve_job_def("extraction_job")
        assert extraction_job.execute_in_process(instance=instance, partition_key=new_key).success
        assert set(instance.get_materialized_partitions(dg.AssetKey("pair_kl"))) == {new_key}

        request = refresh_warehouse(dg.build_schedule_context(instance=instance))
        assert isinstance(request, dg.RunRequest), "the schedule sees an extraction newer than the last publish"
        # The schedule's job, but its dbt models only: the figures are tested above.
        job = defs.resolve_job_def("warehouse_job")
        assert job.execute_in_process(instance=instance, asset_selection=list(warehouse_models.keys)).success

    rows_after, built_after = marts()
    new_rows = rows_after - rows_before
    assert [(suite, size, step) for suite, size, step, *_ in new_rows] == [("micro", "a", 16)]
    assert rows_before <= rows_after, "no other checkpoint's row changed"
    rebuilt = {key for key, built_at in built_after.items() if built_before.get(key) != built_at}
    new_partition = {key for key in rebuilt if key.endswith(" micro|a|step16")}
    assert {"int_context_convergence micro|a|step16", "mart_expected_convergence micro|a|step16"} <= new_partition
    # Final-surprisal bins are read at each size's final step: the suite's configured 8, or a later
    # step once extracted (this run trained on to 16). Of the other partitions only size a's
    # conditional convergence follows it.
    assert rebuilt - new_partition == {f"mart_conditional_convergence micro|a|step{s}" for s in (0, 1, 2, 4, 8)}


@pytest.mark.fault
def test_a_quarantined_checkpoint_is_marked_failed_and_the_rest_of_its_run_is_stored(
    micro_settings, micro_config_path, tmp_path, monkeypatch
):
    """Seed 2 diverges (NaN weights) at step 16 of a two-checkpoint backfill: step 32 is stored
    and materialized, step 16 is quarantined, marked failed in Dagster and named by the check and
    the run's failure, and the command-line materializer goes on instead of stopping."""
    from safetensors.torch import load_file, save_file

    from extract.lake.partition_store import read_quarantine
    from extract.lake.tables import checkpoint_dir
    from orchestration.defs.partitions import checkpoint_partitions
    from orchestration.materialize import EXTRACTION, run_assets

    root = tmp_path / "warehouse"
    shutil.copytree(micro_settings.paths.root, root, ignore=shutil.ignore_patterns("reports", "published", "*.duckdb"))
    monkeypatch.setenv("SEEDCONV_CONFIG", str(micro_config_path))
    monkeypatch.setenv("SEEDCONV_WAREHOUSE", str(root))
    suite = root / "suites" / "micro"
    for step in (16, 32):
        for seed in (1, 2, 3):
            shutil.copytree(suite / f"a-seed{seed}" / "step8", suite / f"a-seed{seed}" / f"step{step}")
    path = suite / "a-seed2" / "step16" / "model.safetensors"
    weights = load_file(path)
    weights["gpt_neox.layers.0.mlp.dense_4h_to_h.weight"][0, 0] = float("nan")
    save_file(weights, path, metadata={"format": "pt"})

    bad, good = partition_key("micro", "a", 16), partition_key("micro", "a", 32)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("checkpoints", [bad, good])
        (reasons,) = run_assets(instance, EXTRACTION, partitions=(bad, good))
        assert reasons == f"- {bad} is quarantined: seed 2: {path.parent}: the model gives NaN or infinite activations"
        # One progress line per partition in the run's log, quarantined ones counted too.
        (run,) = instance.get_runs(limit=1)
        lines = [r.user_message for r in instance.all_logs(run.run_id) if r.user_message.startswith("extraction ")]
        assert len(lines) == 2
        assert lines[0].startswith(f"extraction 1/2 partitions quarantined ({bad}):") and "left" in lines[0]
        assert lines[1].startswith(f"extraction 2/2 partitions done ({good}):") and "all done in" in lines[1]

        status = instance.get_status_by_partition(dg.AssetKey("pair_kl"), [bad, good], checkpoint_partitions)
        assert {key: value.value for key, value in status.items()} == {bad: "FAILED", good: "MATERIALIZED"}
        event = instance.get_latest_materialization_event(dg.AssetKey("pair_kl"))
        assert event.asset_materialization.partition == good
        assert event.asset_materialization.metadata["rows"].value == 3 * 2 * micro_settings.eval.n_tokens
        check = instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(dg.AssetKey("token_stats"), "logits_finite")
        )
        assert not check.evaluation.passed
        failing = check.evaluation.metadata["failing_partitions"].value
        assert f"`{bad}`: quarantined: seed 2: {path.parent}" in failing and good not in failing

        # Any other failure stops the materializer, with the error that caused it.
        (suite / "a-seed3" / "step32" / "model.safetensors").write_bytes(b"not a checkpoint")
        with pytest.raises(SystemExit, match="a-seed3/step32"):
            run_assets(instance, EXTRACTION, partitions=(good, good))

    assert read_quarantine(root / "lake", "micro", "a", 16)["quarantined"].keys() == {"2"}
    assert not checkpoint_dir(root / "lake", "micro", "a", 16).exists()
    assert (checkpoint_dir(root / "lake", "micro", "a", 32) / "manifest.json").exists()
    # Step 32 is compared with step 16 where the seed's model was finite there: not seed 2's.
    moved = pd.read_parquet(checkpoint_dir(root / "lake", "micro", "a", 32) / "trajectory_kl.parquet")
    from_16 = set(moved[moved["from_step"] == 16]["seed"])
    assert from_16 == {1, 3} and set(moved[moved["from_step"] == 0]["seed"]) == {1, 2, 3}


def test_sensor_requests_new_hub_revisions(micro_settings, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from tests.helpers.micro import MICRO_CONFIG

    config = tmp_path / "seedconv.toml"
    config.write_text(MICRO_CONFIG + '\n[[suites]]\nname = "pythia"\nkind = "hub"\nsizes = ["14m"]\nseeds = [1, 2]\n')
    shutil.copytree(micro_settings.paths.suites, tmp_path / "suites")
    settings = SeedconvSettings(config_path=str(config), warehouse_root=str(tmp_path))
    published, listed = {"step0", "step1"}, []

    def list_repo_refs(repo):
        listed.append(repo)
        return SimpleNamespace(branches=[SimpleNamespace(name=name) for name in sorted(published)])

    monkeypatch.setattr("extract.sources.suites.list_repo_refs", list_repo_refs)
    with dg.instance_for_test() as instance:

        def evaluate(cursor):
            context = dg.build_sensor_context(instance=instance, resources={"seedconv": settings}, cursor=cursor)
            result = new_checkpoints(context)
            return [request.partition_key for request in result.run_requests or []], result.cursor

        first, cursor = evaluate(None)
        assert {"pythia|14m|step0", "pythia|14m|step1"} <= set(first)
        assert sorted(listed) == ["EleutherAI/pythia-14m-seed1", "EleutherAI/pythia-14m-seed2"]
        instance.add_dynamic_partitions("checkpoints", first)

        published.add("step2")  # a new revision is pushed for both seeds
        # A minute later the Hub is not asked again (local folders are, every minute) ...
        assert evaluate(str(float(cursor) - 60)) == ([], str(float(cursor) - 60)) and len(listed) == 2
        # ... once its interval has passed, it is, and the new revision is requested.
        later, new_cursor = evaluate(str(float(cursor) - HUB_INTERVAL_S))
        assert later == ["pythia|14m|step2"] and float(new_cursor) >= float(cursor) and len(listed) == 4


@pytest.mark.fault
def test_a_damaged_partition_leaves_the_build_and_comes_back_once_extracted_again(
    materialized, micro_settings, micro_config_path, tmp_path, monkeypatch
):
    """Half of a committed pair_kl file is cut off: the warehouse build sets that partition aside and
    builds from everything else, the sensor repair_damaged requests its extraction, and the next
    build has its rows again, equal to the rows it had."""
    root = tmp_path / "warehouse"
    shutil.copytree(micro_settings.paths.root, root, ignore=shutil.ignore_patterns("reports", "published"))
    monkeypatch.setenv("SEEDCONV_CONFIG", str(micro_config_path))
    monkeypatch.setenv("SEEDCONV_WAREHOUSE", str(root))
    key = partition_key("micro", "b", 4)
    sql = "select * from mart_expected_convergence where suite = 'micro' and size = 'b' order by step"

    def rows() -> pd.DataFrame:
        with duckdb.connect(str(root / "seedconv.duckdb"), read_only=True) as connection:
            return connection.execute(sql).df()

    before = rows()
    pair_kl = checkpoint_dir(root / "lake", "micro", "b", 4) / "pair_kl.parquet"
    pair_kl.write_bytes(pair_kl.read_bytes()[: pair_kl.stat().st_size // 2])
    dbt_models = list(warehouse_models.keys)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("checkpoints", materialized.get_dynamic_partitions("checkpoints"))
        job = defs.resolve_job_def("warehouse_job")
        assert job.execute_in_process(instance=instance, asset_selection=dbt_models).success
        assert rows()["step"].tolist() == [0, 1, 2, 8], "built from everything else"

        context = dg.build_sensor_context(instance=instance, resources={"seedconv": SeedconvSettings()})
        (request,) = repair_damaged(context).run_requests
        assert request.partition_key == key
        extraction = defs.resolve_job_def("extraction_job")
        assert extraction.execute_in_process(instance=instance, partition_key=key).success
        assert not repair_damaged(context).run_requests
        assert job.execute_in_process(instance=instance, asset_selection=dbt_models).success
    # The same rows; DuckDB sums in parallel, so a mean may differ in its last bit between builds.
    pd.testing.assert_frame_equal(rows(), before, rtol=1e-12)
