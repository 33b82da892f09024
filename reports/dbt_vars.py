"""Analysis settings the figures share with the dbt project: read from its `vars`, never restated.

The fingerprint regimes' thresholds and step gap are dbt vars (dbt_project.yml, used by the macro
fingerprint_regime): the defaults regime_tau_low, regime_tau_high and regime_gap, and a suite's
own in regime_suites. The regime figures and tables name them in their captions, so they read
them here, from the one file dbt reads its defaults from. (The figures draw the thresholds each
row was classified by, which the marts carry: those are what a build with other --vars used.)
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
class RegimeSettings:
    """McEntire's eq. 2 on the cosine similarity s_t of a fingerprint to the same seed's `gap`
    steps earlier: stable if s_t > tau_high, chaotic if s_t < tau_low, transition otherwise."""

    tau_low: float
    tau_high: float
    gap: int


def regime_settings(suite: str | None = None, path: Path | None = None) -> RegimeSettings:
    """The dbt vars regime_tau_low, regime_tau_high and regime_gap, with `suite`'s own from
    regime_suites over them (the defaults alone when `suite` is None or has none)."""
    variables = dbt_vars(path)
    own = (variables.get("regime_suites") or {}).get(suite, {}) if suite is not None else {}
    return RegimeSettings(
        float(own.get("regime_tau_low", variables["regime_tau_low"])),
        float(own.get("regime_tau_high", variables["regime_tau_high"])),
        int(own.get("regime_gap", variables["regime_gap"])),
    )
