"""Report assets: one per figure (image in its metadata), one per table (Table 1, McEntire's
tables, the most divergent contexts), and the report page."""

import base64
import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from extract.config import Settings, WarehousePaths
from extract.lake.atomic_writes import replaced_atomically
from orchestration.defs.analysis_tables import WRITTEN_BY
from orchestration.defs.dbt_warehouse import published_warehouse
from orchestration.defs.resources import SeedconvSettings
from reports.figures import (
    DIVERGENT_CONTEXTS,
    FIGURES,
    TABLES,
    TOKEN_RANKINGS,
    FigureSpec,
    QueryFile,
    TableSpec,
    query,
    render,
    rows_for_suite,
    suite_objectives,
)
from reports.page import (
    FigureSection,
    TableSection,
    divergent_contexts_section,
    figure_section,
    rankings_section,
    render_page,
    table_section,
)

GROUP = "reports"


def image_markdown(png: bytes, caption: str) -> dg.MetadataValue:
    # Inlined so the UI shows the figure itself, not a path on some machine.
    return dg.MetadataValue.md(f"![{caption}](data:image/png;base64,{base64.b64encode(png).decode()})")


def figure_paths(paths: WarehousePaths, suite: str, name: str) -> tuple[Path, Path]:
    folder = paths.reports / suite
    return folder / f"{name}.png", folder / f"{name}.csv"


def figure_asset(spec: FigureSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        group_name=GROUP,
        kinds={"matplotlib"},
        deps=[published_warehouse, *spec_deps(spec)],
        description=f"{spec.title}: {spec.caption_for()}",
    )
    def _figure(seedconv: SeedconvSettings) -> dg.MaterializeResult:
        paths = seedconv.load().paths
        metadata: dict[str, dg.MetadataValue] = {"source": spec.source}
        every_suite = query(paths.published_duckdb, spec.sql)
        for suite, objective in suite_objectives(paths.published_duckdb).items():
            if not spec.applies_to(objective):
                continue
            png_path, csv_path = figure_paths(paths, suite, spec.name)
            data = rows_for_suite(every_suite, suite)
            render(spec, data, png_path)
            data.to_csv(csv_path, index=False)
            metadata[f"{suite}_path"] = dg.MetadataValue.path(str(png_path))
            metadata[f"{suite}_figure"] = image_markdown(png_path.read_bytes(), f"{spec.title}, {suite}")
        return dg.MaterializeResult(metadata=metadata)

    return _figure


def spec_deps(spec: FigureSpec | TableSpec | QueryFile) -> list[dg.AssetKey]:
    """The assets of the relations the figure's query reads: dbt models, or the Python analyses
    that write their tables beside the marts."""
    return [dg.AssetKey(WRITTEN_BY.get(relation, relation)) for relation in spec.reads]


figure_assets = [figure_asset(spec) for spec in FIGURES]


def table_asset(spec: TableSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        group_name=GROUP,
        kinds={"csv"},
        deps=[published_warehouse, *spec_deps(spec)],
        description=f"{spec.title}: {spec.caption_for()}",
    )
    def _table(seedconv: SeedconvSettings) -> dg.MaterializeResult:
        paths = seedconv.load().paths
        metadata: dict[str, dg.MetadataValue] = {"source": spec.source}
        every_suite = query(paths.published_duckdb, spec.sql)
        for suite, objective in suite_objectives(paths.published_duckdb).items():
            if not spec.applies_to(objective):
                continue
            rows = rows_for_suite(every_suite, suite)
            _, csv_path = figure_paths(paths, suite, spec.name)
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            rows.to_csv(csv_path, index=False)
            metadata[f"{suite}_table"] = dg.MetadataValue.md(rows.to_markdown(index=False))
        return dg.MaterializeResult(metadata=metadata)

    return _table


table_assets = [table_asset(spec) for spec in TABLES]


def write_query_csvs(paths: WarehousePaths, query_file: QueryFile) -> dict[str, dg.MetadataValue]:
    """Each suite's rows of a query file as its CSV beside the figures; the rows as metadata."""
    metadata: dict[str, dg.MetadataValue] = {}
    every_suite = query(paths.published_duckdb, query_file.sql)
    for suite in suite_objectives(paths.published_duckdb):
        rows = rows_for_suite(every_suite, suite)
        _, csv_path = figure_paths(paths, suite, query_file.name)
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(csv_path, index=False)
        metadata[f"{suite}_table"] = dg.MetadataValue.md(rows.to_markdown(index=False))
    return metadata


@dg.asset(group_name=GROUP, kinds={"csv"}, deps=[published_warehouse])
def token_rankings_table(seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """Fehlauer et al. 2025, Table 1: tokens with the lowest, middle and highest mean KL at each size's last step."""
    return dg.MaterializeResult(metadata=write_query_csvs(seedconv.load().paths, TOKEN_RANKINGS))


@dg.asset(
    group_name=GROUP,
    kinds={"csv"},
    deps=[published_warehouse, *spec_deps(DIVERGENT_CONTEXTS)],
)
def divergent_contexts_table(seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """The contexts where the seeds disagree most at each size's last step, with each seed's top predictions."""
    return dg.MaterializeResult(metadata=write_query_csvs(seedconv.load().paths, DIVERGENT_CONTEXTS))


def build_report(settings: Settings) -> Path:
    """The report page over every suite, from the figures and tables the assets wrote."""
    paths = settings.paths
    database = paths.published_duckdb
    body, nav = [], []
    suites = suite_objectives(database)
    for suite, objective in suites.items():
        for spec in (spec for spec in FIGURES if spec.applies_to(objective)):
            png_path, csv_path = figure_paths(paths, suite, spec.name)
            anchor = f"{suite}-{spec.name}"
            body.append(
                figure_section(
                    FigureSection(
                        anchor,
                        f"{spec.title} ({suite})",
                        spec.caption_for(settings, suite),
                        spec.source,
                        png_path.read_bytes(),
                        pd.read_csv(csv_path),
                        spec.sql,
                    )
                )
            )
            nav.append((anchor, f"{spec.title} ({suite})" if len(suites) > 1 else spec.title))
        for spec in (spec for spec in TABLES if spec.applies_to(objective)):
            _, csv_path = figure_paths(paths, suite, spec.name)
            anchor = f"{suite}-{spec.name}"
            rows = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
            body.append(
                table_section(
                    TableSection(
                        anchor,
                        f"{spec.title} ({suite})",
                        spec.caption_for(settings, suite),
                        spec.source,
                        rows,
                        spec.sql,
                        spec.digits,
                    )
                )
            )
            nav.append((anchor, f"{spec.title} ({suite})" if len(suites) > 1 else spec.title))
        _, rankings_csv = figure_paths(paths, suite, TOKEN_RANKINGS.name)
        body.append(
            rankings_section(pd.read_csv(rankings_csv, keep_default_na=False), f"{suite}-table1", TOKEN_RANKINGS.sql)
        )
        title = "Table 1 (Fehlauer et al. 2025): token rankings"
        nav.append((f"{suite}-table1", f"{title} ({suite})" if len(suites) > 1 else title))
        _, contexts_csv = figure_paths(paths, suite, DIVERGENT_CONTEXTS.name)
        anchor = f"{suite}-{DIVERGENT_CONTEXTS.name}"
        contexts = pd.read_csv(contexts_csv, keep_default_na=False)  # a window's first token's context is ''
        body.append(
            divergent_contexts_section(contexts, anchor, DIVERGENT_CONTEXTS.sql, ", ".join(DIVERGENT_CONTEXTS.reads))
        )
        title = "The contexts where the seeds disagree most"
        nav.append((anchor, f"{title} ({suite})" if len(suites) > 1 else title))
    with duckdb.connect(str(database), read_only=True) as connection:
        overview = (
            connection.execute(
                "select count(distinct suite || '/' || size) as sizes, count(*) as checkpoints, max(n_seeds) as seeds, "
                "max(n_contexts) as contexts, max(step) as last_step from mart_expected_convergence"
            )
            .df()
            .iloc[0]
        )
    page = render_page(
        "How far do seeds agree?",
        "Token-level convergence between language models trained from different random seeds: the expected KL "
        "divergence between every pair of seeds, over training, by model size, and by the kind of token predicted; "
        "their agreement on which sentence of a BLiMP minimal pair is grammatical; and the same for masked "
        "language models, on masked positions.",
        {
            "suites": ", ".join(suites),
            "model sizes": str(overview["sizes"]),
            "seeds per size": str(overview["seeds"]),
            "checkpoints": str(overview["checkpoints"]),
            "contexts": f"{overview['contexts']:,}",
            "last step": str(overview["last_step"]),
        },
        body,
        nav,
        f"Built {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from {database}. All KL in nats.",
    )
    out = paths.reports / "report.html"
    with replaced_atomically(out) as staging:
        staging.write_text(page)
    return out


@dg.asset(
    group_name=GROUP,
    kinds={"html"},
    deps=[*figure_assets, *table_assets, token_rankings_table, divergent_contexts_table],
)
def report_page(seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """One self-contained HTML page with every figure, its numbers, and the tables."""
    out = build_report(seedconv.load())
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(out)), "bytes": out.stat().st_size})
