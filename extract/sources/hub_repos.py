"""Which Hugging Face repository holds each seed of a hub suite, and which checkpoints are known gaps.

A hub suite names its repositories with a pattern over `{size}` and `{seed}`, written out or by
the name of a built-in one:

- `polypythia` (the default): `EleutherAI/pythia-{size}-seed{seed}`, seeds 1-9 of PolyPythia
  (van der Wal et al., ICLR 2025), every seed varying both weight initialisation and data order;
- `data-seed`: `EleutherAI/pythia-{size}-data-seed{seed}`, seeds 1-3 at 160m with only the data
  order varied (the weight initialisation held fixed);
- `weight-seed`: `EleutherAI/pythia-{size}-weight-seed{seed}`, seeds 1-3 at 160m with only the
  weight initialisation varied (the data order held fixed).

Seed 0 of every built-in pattern is the original `EleutherAI/pythia-{size}` (PolyPythia's model
cards call it the seed-1234 run): a PolyPythia seed like the others. The cards say the two
variants hold the other seed fixed, not at which value, so for them seed 0 is a reference run
that may differ from them in both seeds; leave 0 out of `seeds` to compare a variant's runs
among themselves. A written-out pattern equal to a built-in one maps seed 0 the same
way; any other pattern maps seed 0 like every seed, by putting 0 for `{seed}`.

Nothing here imports torch or the Hub client, so the settings can check a pattern when they are
read.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

ORIGINAL_PYTHIA = "EleutherAI/pythia-{size}"
PLACEHOLDERS = ("size", "seed")

# EleutherAI/pythia issue 202: these three revisions have no weights on the Hub. A seed missing
# at a step leaves the others of that step to be compared; the Hub's own answer (no such
# revision, no weights at it) adds to this list at load time.
POLYPYTHIA_MISSING: frozenset[tuple[str, int, int]] = frozenset(
    {("410m", 9, 40_000), ("410m", 6, 88_000), ("410m", 2, 111_000)}
)
POLYPYTHIA_MISSING_NOTE = "known missing on the Hub (EleutherAI/pythia issue 202)"


@dataclass(frozen=True)
class RepoPattern:
    """How one hub suite names its repositories: `pattern` over {size} and {seed}, and seed 0's."""

    name: str
    pattern: str
    seed0: str | None = None  # seed 0's repository pattern over {size}; None: `pattern` with seed 0
    missing: frozenset[tuple[str, int, int]] = field(default=frozenset())  # (size, seed, step)
    missing_note: str = ""

    def repo_id(self, size: str, seed: int) -> str:
        if seed == 0 and self.seed0 is not None:
            return self.seed0.format(size=size)
        return self.pattern.format(size=size, seed=seed)


REPO_PATTERNS: dict[str, RepoPattern] = {
    pattern.name: pattern
    for pattern in (
        RepoPattern(
            "polypythia",
            "EleutherAI/pythia-{size}-seed{seed}",
            ORIGINAL_PYTHIA,
            POLYPYTHIA_MISSING,
            POLYPYTHIA_MISSING_NOTE,
        ),
        RepoPattern("data-seed", "EleutherAI/pythia-{size}-data-seed{seed}", ORIGINAL_PYTHIA),
        RepoPattern("weight-seed", "EleutherAI/pythia-{size}-weight-seed{seed}", ORIGINAL_PYTHIA),
    )
}
DEFAULT_REPO_PATTERN = "polypythia"


def repo_pattern_problem(value: object) -> str | None:
    """Why `value` is not a repository pattern (a built-in's name, or a pattern with {seed} and
    no placeholder but {size} and {seed}); None when it is one."""
    if not isinstance(value, str) or not value:
        return f"must be a built-in pattern ({', '.join(REPO_PATTERNS)}) or a pattern with {{seed}}, got {value!r}"
    if value in REPO_PATTERNS:
        return None
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as error:
        return f"{value!r} is not a valid pattern: {error}"
    if "seed" not in fields:
        return (
            f"{value!r} is neither a built-in pattern ({', '.join(REPO_PATTERNS)}) nor a pattern with {{seed}} "
            "(and {size}) in it, e.g. 'EleutherAI/pythia-{size}-seed{seed}'"
        )
    unknown = sorted(fields - set(PLACEHOLDERS))
    if unknown:
        return f"{value!r} names {unknown}; a pattern may name only {{size}} and {{seed}}"
    return None


def repo_pattern(value: str | None) -> RepoPattern:
    """The pattern a suite's `repo_pattern` names: a built-in by name or by its pattern, else a
    written-out one (seed 0 by its pattern). The value is checked (`repo_pattern_problem`) first."""
    value = value or DEFAULT_REPO_PATTERN
    problem = repo_pattern_problem(value)
    if problem is not None:
        raise ValueError(problem)
    if value in REPO_PATTERNS:
        return REPO_PATTERNS[value]
    for built_in in REPO_PATTERNS.values():
        if built_in.pattern == value:
            return built_in
    return RepoPattern(value, value)
