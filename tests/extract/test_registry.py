"""The registry of lake tables against everything that reads it: dbt's sources, the extraction's
manifests and the Dagster assets."""

from __future__ import annotations

import yaml

from extract.config import REPO_ROOT
from extract.lake.checks import MANIFESTS
from extract.lake.tables import LAKE, PARTITION, SUITE
from extract.measures import MEASURES
from extract.registry import EVAL_SET_TABLES, PARTITION_TABLES, TABLES

SOURCES = REPO_ROOT / "dbt_project" / "models" / "staging" / "sources.yml"
# The hive-partition columns dbt reads from each scope's folder names.
HIVE_COLUMNS = {LAKE: [], SUITE: ["suite"], PARTITION: ["suite", "size", "step"]}
# Lake tables no dbt model reads: the ICL sequences are only the models' input (their scores are read).
NOT_IN_DBT = {"icl_sequences"}
# A dbt source that is no Parquet table: the partitions' JSON manifests.
NOT_IN_REGISTRY = {MANIFESTS}


def _sources() -> dict[str, dict]:
    (lake,) = yaml.safe_load(SOURCES.read_text())["sources"]
    return {table["name"]: table for table in lake["tables"]}


def test_every_dbt_source_is_a_registered_table_with_its_columns_and_files():
    sources = _sources()
    assert set(sources) - NOT_IN_REGISTRY == set(TABLES) - NOT_IN_DBT
    for name, source in sources.items():
        if name in NOT_IN_REGISTRY:
            continue
        table = TABLES[name]
        columns = [column["name"] for column in source["columns"]]
        assert columns == HIVE_COLUMNS[table.scope] + table.schema.names, name
        location = source["config"]["external_location"]
        glob = location.split("read_parquet('", 1)[1].split(".parquet'", 1)[0] + ".parquet"
        assert glob.replace("{{ env_var('SEEDCONV_LAKE', '../warehouse/lake') }}", "LAKE") == table.glob("LAKE"), name


def test_a_table_that_drifts_from_dbt_is_caught(monkeypatch):
    """The check above fails when the registry and sources.yml disagree: a column added to a
    table's schema, or a table dbt does not know."""
    import pyarrow as pa

    from extract.lake.tables import LakeTable

    drifted = LakeTable("pair_kl", TABLES["pair_kl"].schema.append(pa.field("extra", pa.float32())), PARTITION, "x")
    monkeypatch.setitem(TABLES, "pair_kl", drifted)
    try:
        test_every_dbt_source_is_a_registered_table_with_its_columns_and_files()
    except AssertionError as error:
        assert "pair_kl" in str(error)
    else:
        raise AssertionError("a schema that sources.yml does not list passed")


def test_measures_declare_partition_tables_and_suite_inputs():
    for measure in MEASURES:
        assert measure.tables and all(table.scope == PARTITION for table in measure.tables), measure
        assert all(table.scope == SUITE for table in measure.inputs), measure
        assert all(table in EVAL_SET_TABLES for table in measure.inputs)
        assert all(table in PARTITION_TABLES for table in measure.tables)
    phases = [measure.phase for measure in MEASURES]
    assert len(phases) == len(set(phases)), "two measures time into the same phase"
    # A masked LM has no left-to-right probability of text: the ICL, log-likelihood and BLiMP
    # measures do not apply; the fingerprints, weights, logit lens and trajectory do.
    masked = {measure.__name__ for measure in MEASURES if measure.applies_to("masked")}
    assert masked == {"Fingerprints", "WeightStatistics", "LayerLens", "Trajectory"}
