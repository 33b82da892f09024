"""Every table of the lake, declared once by the module that writes it, and every measure.

The extraction's outputs and manifests, the Dagster assets and lake checks, the test fixtures'
lakes and (through a test) dbt's `sources.yml` all read the tables from here.
"""

from __future__ import annotations

from pathlib import Path

from extract.inputs.eval_tokens import EVAL_DOCUMENTS, EVAL_TOKENS, TOKEN_FREQUENCY, UNIGRAM
from extract.inputs.token_tags import TOKEN_POS
from extract.inputs.vocabulary import VOCABULARY
from extract.lake.tables import LAKE, PARTITION, SUITE, LakeTable
from extract.measures import MEASURES
from extract.measures.token_distributions import PAIR_KL, TOKEN_STATS

# The evaluation set's own tables, then each measure's inputs: what `eval_set` writes per suite.
EVAL_SET_TABLES: tuple[LakeTable, ...] = (
    EVAL_DOCUMENTS,
    EVAL_TOKENS,
    UNIGRAM,
    TOKEN_FREQUENCY,
    VOCABULARY,
    *(table for measure in MEASURES for table in measure.inputs),
)
# The per-suite tables the extraction reads: all of the evaluation set's but the vocabulary, which
# only the warehouse reads (to show predicted tokens as text), so writing it changes no partition.
EXTRACTION_INPUTS: tuple[LakeTable, ...] = tuple(
    table for table in EVAL_SET_TABLES if table.scope == SUITE and table is not VOCABULARY
)
# What the extraction writes per checkpoint partition: the engine's two tables, then each measure's.
PARTITION_TABLES: tuple[LakeTable, ...] = (
    TOKEN_STATS,
    PAIR_KL,
    *(table for measure in MEASURES for table in measure.tables),
)
TABLES: dict[str, LakeTable] = {table.name: table for table in (*EVAL_SET_TABLES, TOKEN_POS, *PARTITION_TABLES)}

assert len(TABLES) == len(EVAL_SET_TABLES) + 1 + len(PARTITION_TABLES), "two lake tables share a name"
assert all(table.scope == PARTITION for table in PARTITION_TABLES)
assert all(table.scope in (LAKE, SUITE) for table in EVAL_SET_TABLES)


def suite_table_path(lake: Path, name: str, suite: str) -> Path:
    """The file of the per-suite table `name` of `suite`."""
    return TABLES[name].path(lake, suite)
