"""Dagster resources: the project's settings, read once per run from seedconv.toml, and dbt."""

import dagster as dg

from extract.config import Settings, load_settings

# Every asset that writes the DuckDB file runs in this pool, whose limit is 1 (dagster.yaml's
# default), so a second warehouse build waits for the first instead of failing on DuckDB's lock;
# each also holds orchestration.warehouse_lock.writing_warehouse, which makes the wait certain.
WAREHOUSE_POOL = "warehouse"


class SeedconvSettings(dg.ConfigurableResource):
    """Where the warehouse lives and what to evaluate.

    Empty fields fall back to $SEEDCONV_CONFIG / seedconv.toml and $SEEDCONV_WAREHOUSE.
    """

    config_path: str = ""
    warehouse_root: str = ""

    def load(self) -> Settings:
        return load_settings(self.config_path or None, self.warehouse_root or None)


@dg.definitions
def resources() -> dg.Definitions:
    # Imported here: dbt_warehouse prepares the dbt manifest when it is first imported.
    from orchestration.defs.dbt_warehouse import dbt_resource

    return dg.Definitions(resources={"seedconv": SeedconvSettings(), "dbt": dbt_resource})
