"""Analysis settings the figures share with the dbt project: read from its `vars`, never restated.

The fingerprint regimes' thresholds are dbt vars (dbt_project.yml, used by the macro
fingerprint_regime). The regime figures draw them as lines and name them in their captions, so
both read them here, from the one file dbt reads its defaults from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from extract.config import REPO_ROOT

# Looked up at each call (not bound as a default), so a test can point it at another project file.
DBT_PROJECT_YML = REPO_ROOT / "dbt_project" / "dbt_project.yml"


def dbt_vars(path: Path | None = None) -> dict:
    """The `vars` of the dbt project (their defaults; a build may override them with --vars)."""
    project = yaml.safe_load(Path(path or DBT_PROJECT_YML).read_text())
    return dict(project.get("vars") or {})


@dataclass(frozen=True)
class RegimeThresholds:
    """Chaotic below `chaotic_below`, stable from `stable_from` on, transition between (cosine similarity)."""

    chaotic_below: float
    stable_from: float


def regime_thresholds(path: Path | None = None) -> RegimeThresholds:
    """The dbt vars regime_chaotic_below and regime_stable_from."""
    variables = dbt_vars(path)
    return RegimeThresholds(float(variables["regime_chaotic_below"]), float(variables["regime_stable_from"]))
