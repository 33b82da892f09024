"""The report page: one self-contained HTML file, readable from disk, in an analytics-report style.

Every figure is embedded (base64 PNG) with a sentence saying what it shows, the mart it comes
from, and its numbers a click away: an inline table and a CSV download, both embedded too, so
the page can be mailed or archived as one file. A table of the report is shown whole, with the
same caption, source and CSV download. Under each figure and table, collapsed, is the SQL that
produced its numbers (its query file, reports/queries/), which runs as it is in `make sql`.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

import pandas as pd

STYLE = """
:root { --ink: #1f2328; --muted: #656d76; --line: #e6e8eb; --accent: #3b5b92; --bg: #ffffff; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: var(--ink);
       font: 15px/1.55 -apple-system, BlinkMacSystemFont, "Segoe UI", "Inter", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 40px 32px 80px; }
header h1 { font-size: 28px; font-weight: 650; margin: 0 0 6px; letter-spacing: -0.01em; }
header p { color: var(--muted); margin: 0 0 24px; max-width: 820px; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 0 0 32px; }
.stat { background: var(--bg); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.stat .value { font-size: 22px; font-weight: 600; }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; }
nav { margin: 0 0 28px; font-size: 13px; display: flex; flex-wrap: wrap; gap: 6px 16px; }
nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
section { background: var(--bg); border: 1px solid var(--line); border-radius: 10px; padding: 22px 24px;
          margin: 0 0 22px; }
section h2 { font-size: 18px; font-weight: 620; margin: 0 0 4px; }
section .caption { color: var(--muted); margin: 0 0 14px; max-width: 900px; }
section img { max-width: 100%; height: auto; display: block; }
.source { color: var(--muted); font-size: 12px; margin-top: 10px; }
.source code { background: #f1f3f5; padding: 1px 5px; border-radius: 4px; }
details { margin-top: 10px; font-size: 13px; }
summary { cursor: pointer; color: var(--accent); }
a.csv { color: var(--accent); font-size: 13px; margin-left: 12px; }
.table-wrap { max-height: 360px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; margin-top: 8px; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { position: sticky; top: 0; background: #fafbfc; font-weight: 600; color: var(--muted); }
td:first-child, th:first-child { text-align: left; }
.rankings { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 14px; }
.rankings h3 { font-size: 13px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); margin: 6px 0; }
.sql p { color: var(--muted); margin: 6px 0; }
.sql pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
           overflow: auto; font-size: 12px; line-height: 1.45; }
.table-wrap.contexts { max-height: 720px; }
.contexts td { white-space: normal; vertical-align: top; text-align: left; }
.contexts td.kl { text-align: right; white-space: nowrap; }
.contexts .context { max-width: 460px; }
.contexts mark { background: #fde68a; padding: 0 2px; border-radius: 3px; font-weight: 600; white-space: pre; }
.contexts .seed { color: var(--muted); }
.contexts .predictions { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
footer { color: var(--muted); font-size: 12px; margin-top: 30px; }
"""


SQL_HINT = "Runs as it is in `make sql` (DuckDB's shell on warehouse/published/seedconv.duckdb)."


def sql_block(sql: str) -> str:
    """The query behind a figure or table, collapsed, as Evidence pages show theirs."""
    return f"""<details class="sql"><summary>SQL</summary><p>{html.escape(SQL_HINT)}</p>
    <pre><code>{html.escape(sql.strip())}</code></pre></details>"""


@dataclass(frozen=True)
class FigureSection:
    anchor: str
    title: str
    caption: str
    source: str
    png: bytes
    data: pd.DataFrame
    sql: str  # its query file's text


def _table(data: pd.DataFrame, digits: int = 4) -> str:
    return data.to_html(index=False, border=0, float_format=lambda x: f"{x:.{digits}g}", na_rep="–")


def _csv_link(data: pd.DataFrame, name: str) -> str:
    encoded = base64.b64encode(data.to_csv(index=False).encode()).decode()
    return f'<a class="csv" download="{html.escape(name)}.csv" href="data:text/csv;base64,{encoded}">CSV</a>'


def display_width(png: bytes) -> int:
    """CSS width for a 150-dpi figure: shown as at 100 dpi, so every figure's text has one size
    and a one-panel figure is not blown up to the page's width. (PNG keeps the width in IHDR.)"""
    return int.from_bytes(png[16:20], "big") * 2 // 3


def figure_section(section: FigureSection) -> str:
    image = base64.b64encode(section.png).decode()
    return f"""
<section id="{section.anchor}">
  <h2>{html.escape(section.title)}</h2>
  <p class="caption">{html.escape(section.caption)}</p>
  <img alt="{html.escape(section.title)}" style="width: {display_width(section.png)}px"
       src="data:image/png;base64,{image}">
  <details><summary>The numbers behind this figure ({len(section.data):,} rows)</summary>
    {_csv_link(section.data, section.anchor)}
    <div class="table-wrap">{_table(section.data)}</div>
  </details>
  {sql_block(section.sql)}
  <div class="source">From <code>{html.escape(section.source)}</code></div>
</section>"""


@dataclass(frozen=True)
class TableSection:
    anchor: str
    title: str
    caption: str
    source: str
    data: pd.DataFrame
    sql: str  # its query file's text
    digits: int = 4  # significant digits of its floats


def table_section(section: TableSection) -> str:
    """A table of the report, every row shown, with its CSV a click away."""
    return f"""
<section id="{section.anchor}">
  <h2>{html.escape(section.title)}</h2>
  <p class="caption">{html.escape(section.caption)}</p>
  <div class="table-wrap">{_table(section.data, section.digits)}</div>
  {_csv_link(section.data, section.anchor)}
  {sql_block(section.sql)}
  <div class="source">From <code>{html.escape(section.source)}</code></div>
</section>"""


def rankings_section(rankings: pd.DataFrame, anchor: str, sql: str) -> str:
    """Table 1: tokens with the lowest, middle and highest mean KL at each size's last step."""
    blocks = []
    for (size, step), rows in rankings.groupby(["size", "step"], sort=False):
        groups = []
        for group in ("lowest", "middle", "highest"):
            part = rows[rows["rank_group"] == group][["rank", "token_text", "n_occurrences", "mean_kl"]]
            part = part.assign(token_text=part["token_text"].map(repr))
            groups.append(f"<div><h3>{group} mean KL</h3>{_table(part)}</div>")
        heading = f"<h3>size {html.escape(str(size))}, step {step}</h3>"
        blocks.append(f"{heading}<div class='rankings'>{''.join(groups)}</div>")
    return f"""
<section id="{anchor}">
  <h2>Table 1 (Fehlauer et al. 2025): which tokens the seeds agree on</h2>
  <p class="caption">Token types ranked by their mean KL between seeds (over their contexts and all ordered
  seed pairs) at each size's last checkpoint: the lowest, the middle and the highest.</p>
  {"".join(blocks)}
  <details><summary>All rows</summary>{_csv_link(rankings, anchor)}
    <div class="table-wrap">{_table(rankings)}</div></details>
  {sql_block(sql)}
  <div class="source">From <code>mart_token_rankings</code></div>
</section>"""


def _visible(text: str) -> str:
    """Text for the page, escaped, with line breaks shown as ↵ (a context reads as one line)."""
    return html.escape(text).replace("\n", "↵")


def divergent_contexts_section(rows: pd.DataFrame, anchor: str, sql: str, source: str) -> str:
    """The contexts where the seeds disagree most, per size at its last step: each context's last
    tokens with its target marked, its mean KL, and each seed's top predictions there."""
    blocks = []
    for (size, step), size_rows in rows.groupby(["size", "step"], sort=False):
        lines = []
        for rank, context in size_rows.groupby("rank", sort=False):
            first = context.iloc[0]
            cut = "…" if first["context_cut"] else ""
            text = f"{cut}{_visible(first['context_text'])}<mark>{_visible(first['target_text'])}</mark>"
            seeds = "<br>".join(
                f'<span class="seed">seed {seed}</span> {html.escape(predictions)} '
                f'<span class="seed">(target {probability:.2f})</span>'
                for seed, predictions, probability in context[
                    ["seed", "top_predictions", "target_probability"]
                ].itertuples(index=False)
            )
            lines.append(
                f'<tr><td>{rank}</td><td class="context">{text}</td><td class="kl">{first["mean_kl"]:.3g}</td>'
                f'<td class="predictions">{seeds}</td></tr>'
            )
        header = "<tr><th>rank</th><th>context … target</th><th>mean KL</th><th>each seed's top predictions</th></tr>"
        blocks.append(
            f"<h3>size {html.escape(str(size))}, step {step}</h3>"
            f'<div class="table-wrap contexts"><table>{header}{"".join(lines)}</table></div>'
        )
    return f"""
<section id="{anchor}">
  <h2>The contexts where the seeds disagree most</h2>
  <p class="caption">Per size at its last checkpoint, the contexts with the largest mean KL between seeds (over
  all ordered seed pairs; how many: dbt var divergent_contexts_n): the last tokens of the context (… where it is
  longer), the target marked, and each seed's most probable next tokens with their probabilities, then the
  probability it gave the target (a masked LM also saw the rest of the window after the target). Token texts
  are quoted as JSON strings, so spaces and line breaks show.</p>
  {"".join(blocks)}
  <details><summary>All rows</summary>{_csv_link(rows, anchor)}
    <div class="table-wrap">{_table(rows)}</div></details>
  {sql_block(sql)}
  <div class="source">From <code>{html.escape(source)}</code></div>
</section>"""


def render_page(
    title: str, intro: str, stats: dict[str, str], body: list[str], nav: list[tuple[str, str]], footer: str
) -> str:
    stat_cards = "".join(
        f'<div class="stat"><div class="value">{html.escape(v)}</div><div class="label">{html.escape(k)}</div></div>'
        for k, v in stats.items()
    )
    links = "".join(f'<a href="#{anchor}">{html.escape(label)}</a>' for anchor, label in nav)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><main>
<header><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p></header>
<div class="stats">{stat_cards}</div>
<nav>{links}</nav>
{"".join(body)}
<footer>{html.escape(footer)}</footer>
</main></body></html>
"""
