"""Report assets: figures rendered from the published warehouse, shown in the asset's metadata."""


import base64

import dagster as dg

from orchestration.resources import SeedconvSettings
from orchestration.warehouse import published_warehouse
from reports.figure1 import render_figure1, suites_in


def image_markdown(png: bytes, caption: str) -> dg.MetadataValue:
    # Inlined so the UI shows the figure itself, not a path on some machine.
    return dg.MetadataValue.md(f"![{caption}](data:image/png;base64,{base64.b64encode(png).decode()})")


@dg.asset(group_name="reports", kinds={"matplotlib"}, deps=[published_warehouse])
def convergence_figure(seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """Figure 1: E[conv] over training per size, beside KL to uniform, to unigram and cross-entropy."""
    paths = seedconv.load().paths
    metadata: dict[str, dg.MetadataValue] = {}
    for suite in suites_in(paths.published_duckdb):
        out = render_figure1(paths.published_duckdb, suite, paths.reports / f"figure1_{suite}.png")
        metadata[f"{suite}_path"] = dg.MetadataValue.path(str(out))
        metadata[f"{suite}_figure"] = image_markdown(out.read_bytes(), f"Figure 1, {suite}")
    return dg.MaterializeResult(metadata=metadata)
