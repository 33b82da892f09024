"""Multi-seed checkpoint suites behind one interface.

A suite answers: which sizes, seeds and steps exist, and how to load one checkpoint's model and
the suite's tokenizer. `LocalSuite` reads a directory laid out `<size>-seed<n>/step<N>/` with
Hugging Face files (the mini suites, or a user's own training runs); `HubSuite` loads PolyPythia
(or its data-seed and weight-seed variants, or any repositories named by a pattern) and
`MultiBertSuite` loads MultiBERT from the Hugging Face Hub by repo id and revision.

A seed may lack a checkpoint that the others have (a revision never published, a step a run
skipped). Such a step is still a partition, of the seeds that have it, once it is complete:
every seed either has the checkpoint or lacks it for good, because it is known missing
(`hub_repos`), the Hub says so, or the seed's run has later checkpoints already. A seed that has
neither the step nor a later one may still be training (or uploading), so the step waits for it.
At least two seeds must have the step (`MIN_SEEDS`).

A suite's `objective` says how its models predict: `causal` (the next token, from the tokens
before it) or `masked` (a masked token, from the tokens on both sides).
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download, list_repo_refs
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from extract.config import SuiteConfig
from extract.sources.checkpoint_reader import (
    SAFETENSORS_INDEX,
    TORCH_WEIGHTS,
    CheckpointUnreadable,
    CheckpointWeights,
    read_checkpoint,
    weight_files,
)
from extract.sources.hub_cache import evict_stored_revisions
from extract.sources.hub_repos import RepoPattern, repo_pattern

# PolyPythia's 154 checkpoints: log-spaced to 512, then every 1000 steps to 143000.
PYTHIA_STEPS: tuple[int, ...] = (0, *(2**i for i in range(10)), *range(1000, 143_001, 1000))
SAFETENSORS = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
# MultiBERT (Sellam et al. 2022): 25 seeds of BERT-base at 2M steps; seeds 0-4 also keep their
# checkpoints at step 0, every 20k steps to 200k, then every 100k to 2M (29 in all).
MULTIBERT_STEPS: tuple[int, ...] = (*range(0, 200_001, 20_000), *range(300_000, 2_000_001, 100_000))
# Heads whose class names say the model predicts masked tokens.
MASKED_ARCHITECTURE_SUFFIXES = ("ForMaskedLM", "ForPreTraining")
# A partition compares seeds: a step fewer seeds have is not one.
MIN_SEEDS = 2


def objective_of(config: PretrainedConfig | dict) -> str:
    """'masked' for a masked-LM checkpoint (BERT and kin), else 'causal', from its config."""
    architectures = (config.get("architectures") if isinstance(config, dict) else config.architectures) or []
    return "masked" if any(a.endswith(MASKED_ARCHITECTURE_SUFFIXES) for a in architectures) else "causal"


class SuiteUnavailable(RuntimeError):
    """A checkpoint or tokenizer cannot be loaded; the message says which and why."""


class CheckpointMissing(SuiteUnavailable):
    """A seed has no checkpoint at a step, for good (the Hub has no such revision, or no weights
    at it): the step's partition is extracted with the other seeds. Not raised when the Hub
    cannot be asked (offline): that is `SuiteUnavailable`."""


def complete_steps(
    available: dict[int, set[int]], known_missing: set[tuple[int, int]] = frozenset()
) -> dict[int, list[int]]:
    """The steps that are partitions, with the seeds that have each, from the steps each seed
    has (`available`: seed -> steps) and the (seed, step) checkpoints known never to come.

    A step is complete when every seed has it, is known to lack it, or has a later step already
    (it went past the step without it); a seed with neither may still be writing it. Of the
    complete steps, those that at least MIN_SEEDS seeds have are partitions.
    """
    latest = {seed: max(steps, default=-1) for seed, steps in available.items()}
    partitions = {}
    for step in sorted(set().union(*available.values())):
        present = sorted(seed for seed, steps in available.items() if step in steps)
        settled = all(
            step in steps or (seed, step) in known_missing or latest[seed] > step for seed, steps in available.items()
        )
        if settled and len(present) >= MIN_SEEDS:
            partitions[step] = present
    return partitions


def partition_key(suite: str, size: str, step: int) -> str:
    """The Dagster partition key of one checkpoint: every seed of (suite, size, step)."""
    return f"{suite}|{size}|step{step}"


def parse_partition_key(key: str) -> tuple[str, str, int]:
    match = re.fullmatch(r"([^|]+)\|([^|]+)\|step(\d+)", key)
    if not match:
        raise ValueError(f"not a checkpoint partition key (suite|size|stepN): {key!r}")
    return match.group(1), match.group(2), int(match.group(3))


@dataclass(frozen=True)
class Checkpoint:
    """One model of a suite; `source` names where its weights come from."""

    suite: str
    size: str
    seed: int
    step: int
    source: str


class Suite(ABC):
    name: str

    @property
    def objective(self) -> str:
        """How the suite's models predict: 'causal' or 'masked'."""
        return "causal"

    @abstractmethod
    def sizes(self) -> list[str]: ...

    @abstractmethod
    def seeds(self, size: str) -> list[int]: ...

    @abstractmethod
    def steps(self, size: str) -> list[int]:
        """The steps that are partitions of `size`: at least two seeds have a checkpoint there and
        every other seed lacks it for good (the module's docstring says how that is decided)."""

    def missing_at(self, size: str, step: int) -> dict[int, str]:
        """The seeds of `size` that lack a checkpoint at `step` for good, each with why; none by default."""
        return {}

    def final_step(self, size: str) -> int | None:
        """The step `size` trains to, the suite's final checkpoint (where final surprisal is read,
        extracted or not yet); None when the suite does not say (a local run of unknown length)."""
        return None

    def seeds_at(self, size: str, step: int) -> list[int]:
        """The seeds of `size` with a checkpoint at `step`: those one partition compares. A seed
        in neither this nor `missing_at` may still get the checkpoint (a run still training)."""
        missing = self.missing_at(size, step)
        return [seed for seed in self.seeds(size) if seed not in missing]

    def seed_steps(self, size: str, seed: int) -> list[int]:
        """The steps of `size` (partitions) at which `seed` has a checkpoint."""
        return [step for step in self.steps(size) if seed in self.seeds_at(size, step)]

    @abstractmethod
    def checkpoint(self, size: str, seed: int, step: int) -> Checkpoint: ...

    @abstractmethod
    def load_model(self, checkpoint: Checkpoint, device: torch.device) -> PreTrainedModel:
        """The whole Hugging Face model, for use outside the extraction (which uses `read_weights`)."""

    @abstractmethod
    def weights_folder(self, checkpoint: Checkpoint) -> Path:
        """A local folder holding the checkpoint's config.json and weight files."""

    def read_weights(self, checkpoint: Checkpoint) -> CheckpointWeights:
        """The checkpoint's tensors and config, read once, with a sha256 of the weight files."""
        try:
            return read_checkpoint(self.weights_folder(checkpoint), checkpoint.source)
        except CheckpointUnreadable as error:
            raise SuiteUnavailable(str(error)) from error

    @abstractmethod
    def load_tokenizer(self) -> PreTrainedTokenizerBase: ...

    def partitions(self) -> list[tuple[str, int]]:
        """Every (size, step) that is complete, with at least two seeds: one extraction partition each."""
        return [(size, step) for size in self.sizes() for step in self.steps(size)]

    def trim_cache(self, stored: set[str], keep: set[str]) -> list[str]:
        """Frees what the suite's downloaded checkpoints take beyond its budget, deleting only
        checkpoints whose sources are in `stored` (their partitions are in the lake) and not in
        `keep` (still to be extracted); returns the sources deleted. Nothing for a local suite."""
        return []


def _load_lm(source: str, device: torch.device, objective: str = "causal", **kwargs) -> PreTrainedModel:
    auto = AutoModelForMaskedLM if objective == "masked" else AutoModelForCausalLM
    model = auto.from_pretrained(source, dtype=torch.float32, **kwargs)
    return model.to(device).eval()


class LocalSuite(Suite):
    """Checkpoints on disk: `<root>/<size>-seed<n>/step<N>/` with config.json and weights.

    The tokenizer is read from `<root>/tokenizer/`, or else from the first checkpoint folder.
    A checkpoint folder counts only once its weights file exists, so a trainer that writes
    folders atomically never exposes half a checkpoint. A seed lacks a step for good once its run
    has a later checkpoint; until then the step waits for it (a run still training).
    """

    RUN_PATTERN = re.compile(r"(?P<size>.+)-seed(?P<seed>\d+)")
    STEP_PATTERN = re.compile(r"step(?P<step>\d+)")

    def __init__(self, name: str, root: Path, final_step: int | None = None):
        self.name = name
        self.root = Path(root)
        self._final_step = final_step

    def final_step(self, size: str) -> int | None:
        """The configured final step (a mini suite's `steps`, a local suite's `final_step`), or None."""
        return self._final_step

    def _runs(self) -> dict[str, dict[int, Path]]:
        runs: dict[str, dict[int, Path]] = {}
        if not self.root.is_dir():
            return runs
        for run_dir in sorted(self.root.iterdir()):
            match = self.RUN_PATTERN.fullmatch(run_dir.name)
            if match and run_dir.is_dir():
                runs.setdefault(match["size"], {})[int(match["seed"])] = run_dir
        return runs

    @staticmethod
    def _complete_steps(run_dir: Path) -> set[int]:
        steps = set()
        for step_dir in run_dir.iterdir():
            match = LocalSuite.STEP_PATTERN.fullmatch(step_dir.name)
            if match and (step_dir / "config.json").exists() and weight_files(step_dir):
                steps.add(int(match["step"]))
        return steps

    @property
    def objective(self) -> str:
        """Read from the first checkpoint's config.json (its `architectures`)."""
        for size in self.sizes():
            for step in self.steps(size)[:1]:
                for seed in self.seeds_at(size, step)[:1]:
                    config = Path(self.checkpoint(size, seed, step).source) / "config.json"
                    return objective_of(json.loads(config.read_text()))
        return "causal"

    def sizes(self) -> list[str]:
        return sorted(self._runs())

    def seeds(self, size: str) -> list[int]:
        return sorted(self._runs().get(size, {}))

    def _available(self, size: str) -> dict[int, set[int]]:
        """Each seed's complete checkpoints (steps) of `size`."""
        return {seed: self._complete_steps(run_dir) for seed, run_dir in self._runs().get(size, {}).items()}

    def steps(self, size: str) -> list[int]:
        return sorted(complete_steps(self._available(size)))

    def seed_steps(self, size: str, seed: int) -> list[int]:
        # One listing of the folders, not one per step.
        return [step for step, seeds in complete_steps(self._available(size)).items() if seed in seeds]

    def seeds_at(self, size: str, step: int) -> list[int]:
        return sorted(seed for seed, steps in self._available(size).items() if step in steps)

    def missing_at(self, size: str, step: int) -> dict[int, str]:
        return {
            seed: f"{self.checkpoint(size, seed, step).source} does not exist and the run has later checkpoints"
            for seed, steps in sorted(self._available(size).items())
            if step not in steps and max(steps, default=-1) > step
        }

    def checkpoint(self, size: str, seed: int, step: int) -> Checkpoint:
        path = self.root / f"{size}-seed{seed}" / f"step{step}"
        return Checkpoint(self.name, size, seed, step, str(path))

    def load_model(self, checkpoint: Checkpoint, device: torch.device) -> PreTrainedModel:
        path = Path(checkpoint.source)
        if not (path / "config.json").exists():
            raise SuiteUnavailable(f"checkpoint folder {path} is missing or has no config.json")
        try:
            return _load_lm(str(path), device, self.objective)
        # Broad on purpose: a damaged file fails inside safetensors, torch or transformers,
        # each with its own exception type, and the user needs the folder's name in every case.
        except Exception as error:
            raise SuiteUnavailable(f"cannot load checkpoint {path}: {error}") from error

    def weights_folder(self, checkpoint: Checkpoint) -> Path:
        folder = Path(checkpoint.source)
        self._check_tokenizer(folder)
        return folder

    def _check_tokenizer(self, folder: Path) -> None:
        """A checkpoint folder that carries its own tokenizer.json must carry the suite's: seeds
        trained with different tokenizers have no common tokens to compare."""
        own = folder / "tokenizer.json"
        if not own.exists() or self._suite_tokenizer is None or self._suite_tokenizer[0] == own:
            return
        theirs, identity = self._suite_tokenizer
        if _tokenizer_identity(own) != identity:
            raise SuiteUnavailable(
                f"{folder}: its tokenizer.json differs from the suite's ({theirs}); seeds trained with "
                "different tokenizers cannot be compared token by token"
            )

    @cached_property
    def _suite_tokenizer(self) -> tuple[Path, list] | None:
        """The suite's tokenizer.json and its identity, read once; None without one."""
        folder = self._tokenizer_folder()
        path = folder / "tokenizer.json" if folder is not None else None
        return (path, _tokenizer_identity(path)) if path is not None and path.exists() else None

    def _tokenizer_folder(self) -> Path | None:
        candidates = [self.root / TOKENIZER_DIR]
        for size in self.sizes():
            for step in self.steps(size)[:1]:
                candidates += [Path(self.checkpoint(size, seed, step).source) for seed in self.seeds_at(size, step)[:1]]
        for path in candidates:
            if (path / "tokenizer.json").exists() or (path / "tokenizer_config.json").exists():
                return path
        return None

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        path = self._tokenizer_folder()
        if path is not None:
            return AutoTokenizer.from_pretrained(str(path))
        raise SuiteUnavailable(
            f"suite {self.name!r} at {self.root} has no tokenizer: put tokenizer files in "
            f"{self.root / TOKENIZER_DIR} or in the checkpoint folders"
        )


def _tokenizer_identity(path: Path) -> list:
    """What makes two fast tokenizers tokenize alike: the model (vocabulary, merges), how text is
    normalized and split before it, and the added (special) tokens; not padding or truncation."""
    document = json.loads(path.read_text())
    return [document.get(key) for key in ("model", "normalizer", "pre_tokenizer", "added_tokens")]


class HubSuite(Suite):
    """Seeds on the Hugging Face Hub, one repository per (size, seed), at revisions `step<N>`.

    The repositories are named by `pattern` (extract/sources/hub_repos.py): PolyPythia's
    `EleutherAI/pythia-<size>-seed<n>`, seed 0 the original `EleutherAI/pythia-<size>`, by
    default. Nothing here can be listed offline, so sizes, seeds and steps come from the
    configuration; a seed is missing at a step when the pattern's list says so or when the Hub
    answers that the revision (or its weights) does not exist, and the step goes on without it.
    With `cache_budget_bytes`, `trim_cache` bounds what the suite's repositories hold in the
    Hugging Face cache (extract/sources/hub_cache.py).
    """

    def __init__(
        self,
        name: str,
        sizes: tuple[str, ...],
        seeds: tuple[int, ...],
        steps: tuple[int, ...] = (),
        pattern: RepoPattern | str | None = None,
        cache_budget_bytes: int | None = None,
    ):
        self.name = name
        self._sizes = list(sizes)
        self._seeds = sorted(seeds)
        self._steps = sorted(steps or PYTHIA_STEPS)
        self.pattern = pattern if isinstance(pattern, RepoPattern) else repo_pattern(pattern)
        self.cache_budget_bytes = cache_budget_bytes
        # (size, seed, step) -> why that checkpoint does not exist: the pattern's known gaps, and
        # what the Hub answers while the suite loads (on the reader's thread, hence the lock).
        self._missing_lock = threading.Lock()
        self._missing: dict[tuple[str, int, int], str] = {
            (size, seed, step): f"{self.repo_id(size, seed)}@{self.revision(step)}: {self.pattern.missing_note}"
            for size, seed, step in self.pattern.missing
        }

    def repo_id(self, size: str, seed: int) -> str:
        return self.pattern.repo_id(size, seed)

    @staticmethod
    def revision(step: int) -> str:
        return f"step{step}"

    def sizes(self) -> list[str]:
        return list(self._sizes)

    def seeds(self, size: str) -> list[int]:
        return list(self._seeds)

    def steps(self, size: str) -> list[int]:
        return [step for step in self._steps if len(self.seeds_at(size, step)) >= MIN_SEEDS]

    def final_step(self, size: str) -> int | None:
        """The last configured step, or without `steps` the last the suite publishes (PYTHIA_STEPS, MULTIBERT_STEPS)."""
        return self._steps[-1]

    def missing_at(self, size: str, step: int) -> dict[int, str]:
        with self._missing_lock:
            known = sorted(self._missing.items())
        return {seed: reason for (z, seed, s), reason in known if z == size and s == step and seed in self._seeds}

    def published_steps(self, size: str) -> list[int]:
        """The complete steps of `size` on the Hub now (branches `step<N>`), listed online: every
        seed has the revision, is known to lack it (the pattern's list), or has a later one
        (`complete_steps`); at least two seeds have it. SuiteUnavailable when the Hub cannot be
        reached."""
        available: dict[int, set[int]] = {}
        for seed in self._seeds:
            repo = self.repo_id(size, seed)
            try:
                branches = list_repo_refs(repo).branches
            # Broad on purpose: without a network the HTTP client raises its own error types,
            # which are neither OSError nor the Hub's; offline is not a fault of the suite.
            except Exception as error:
                message = f"cannot list the revisions of {repo} on the Hugging Face Hub: {error}"
                raise SuiteUnavailable(message) from error
            available[seed] = {int(m["step"]) for b in branches if (m := re.fullmatch(r"step(?P<step>\d+)", b.name))}
        with self._missing_lock:
            known = {(seed, step) for z, seed, step in self._missing if z == size}
        return sorted(complete_steps(available, known))

    def checkpoint(self, size: str, seed: int, step: int) -> Checkpoint:
        return Checkpoint(self.name, size, seed, step, f"{self.repo_id(size, seed)}@{self.revision(step)}")

    def load_model(self, checkpoint: Checkpoint, device: torch.device) -> PreTrainedModel:
        repo, revision = checkpoint.source.split("@")
        try:
            return _load_lm(repo, device, self.objective, revision=revision)
        except OSError as error:
            raise self._unreachable(repo, revision, error) from error

    def _unreachable(self, repo: str, revision: str, error: Exception) -> SuiteUnavailable:
        return SuiteUnavailable(
            f"cannot load {repo} at revision {revision} from the Hugging Face Hub "
            f"(offline, or not in the local Hugging Face cache): {error}"
        )

    def _missing_checkpoint(self, checkpoint: Checkpoint, reason: str) -> CheckpointMissing:
        """Remembers that the Hub has no such checkpoint, so the step goes on without the seed."""
        with self._missing_lock:
            self._missing[checkpoint.size, checkpoint.seed, checkpoint.step] = reason
        return CheckpointMissing(reason)

    def weights_folder(self, checkpoint: Checkpoint) -> Path:
        """The revision's snapshot in the Hugging Face cache, downloading what is missing.

        Only the config and one copy of the weights are fetched: safetensors (whole or sharded)
        where the revision has them, else the torch pickle. CheckpointMissing when the Hub says
        the revision, its config or every weights file does not exist; SuiteUnavailable when it
        cannot be asked and the cache does not have them.
        """
        repo, revision = checkpoint.source.split("@")
        try:
            folder = Path(hf_hub_download(repo, "config.json", revision=revision)).parent
        except RepositoryNotFoundError as error:
            raise SuiteUnavailable(
                f"{repo} does not exist on the Hugging Face Hub (or is private): check the suite's sizes and seeds"
            ) from error
        except RevisionNotFoundError as error:
            raise self._missing_checkpoint(checkpoint, f"{repo} has no revision {revision} on the Hub") from error
        except RemoteEntryNotFoundError as error:
            raise self._missing_checkpoint(checkpoint, f"{repo} has no config.json at revision {revision}") from error
        except (OSError, HfHubHTTPError) as error:
            raise self._unreachable(repo, revision, error) from error
        unreachable = None
        for name in (SAFETENSORS, SAFETENSORS_INDEX, TORCH_WEIGHTS):
            try:
                hf_hub_download(repo, name, revision=revision)
            except RemoteEntryNotFoundError:
                continue
            except (OSError, HfHubHTTPError) as error:
                unreachable = unreachable or error
                continue
            if name == SAFETENSORS_INDEX:
                for shard in weight_files(folder):
                    hf_hub_download(repo, shard.name, revision=revision)
            return folder
        if unreachable is not None:
            raise self._unreachable(repo, revision, unreachable) from unreachable
        raise self._missing_checkpoint(
            checkpoint, f"{repo} at revision {revision} has no weights file ({SAFETENSORS}, {TORCH_WEIGHTS})"
        )

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer of the first seed's repository (seed 0's, the original, when configured)."""
        repo = self.repo_id(self._sizes[0], self._seeds[0])
        try:
            return AutoTokenizer.from_pretrained(repo)
        except OSError as error:
            raise SuiteUnavailable(
                f"cannot load the tokenizer of {repo} from the Hugging Face Hub "
                f"(offline, or not in the local Hugging Face cache): {error}"
            ) from error

    def _repo_ids(self) -> set[str]:
        return {self.repo_id(size, seed) for size in self._sizes for seed in self._seeds}

    def trim_cache(self, stored: set[str], keep: set[str]) -> list[str]:
        if self.cache_budget_bytes is None:
            return []
        return evict_stored_revisions(self._repo_ids(), set(stored) - set(keep), self.cache_budget_bytes)


class MultiBertSuite(HubSuite):
    """MultiBERT on the Hugging Face Hub: `google/multiberts-seed_<n>-step_<k>k`, one size ("base").

    The final checkpoint of each seed is also `google/multiberts-seed_<n>`; the step-named repos
    are used throughout so that every step is addressed the same way. Steps are given in training
    steps (multiples of 1000).
    """

    SIZE = "base"

    def __init__(
        self, name: str, seeds: tuple[int, ...], steps: tuple[int, ...] = (), cache_budget_bytes: int | None = None
    ):
        # The pattern names each seed's final checkpoint; `repo_id` adds the step.
        pattern = RepoPattern("multibert", "google/multiberts-seed_{seed}")
        super().__init__(name, (self.SIZE,), seeds, steps or MULTIBERT_STEPS, pattern, cache_budget_bytes)
        uneven = [step for step in self._steps if step % 1000]
        if uneven:
            raise SuiteUnavailable(f"MultiBERT publishes checkpoints at multiples of 1000 steps, not {uneven}")

    @property
    def objective(self) -> str:
        return "masked"

    def repo_id(self, size: str, seed: int, step: int | None = None) -> str:
        return f"google/multiberts-seed_{seed}-step_{(step or 0) // 1000}k"

    def _repo_ids(self) -> set[str]:
        return {self.repo_id(self.SIZE, seed, step) for seed in self._seeds for step in self._steps}

    def checkpoint(self, size: str, seed: int, step: int) -> Checkpoint:
        if size != self.SIZE:
            raise SuiteUnavailable(f"MultiBERT has one size, {self.SIZE!r}, not {size!r}")
        return Checkpoint(self.name, size, seed, step, f"{self.repo_id(size, seed, step)}@main")

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        repo = self.repo_id(self.SIZE, self._seeds[0], self._steps[-1])
        try:
            return AutoTokenizer.from_pretrained(repo)
        except OSError as error:
            raise SuiteUnavailable(
                f"cannot load the tokenizer of {repo} from the Hugging Face Hub "
                f"(offline, or not in the local Hugging Face cache): {error}"
            ) from error


def open_suite(config: SuiteConfig) -> Suite:
    if config.kind == "local":
        return LocalSuite(config.name, config.path, config.final_step)
    if config.kind == "multibert":
        return MultiBertSuite(config.name, config.seeds, config.steps, config.cache_budget_bytes)
    return HubSuite(
        config.name, config.sizes, config.seeds, config.steps, config.repo_pattern, config.cache_budget_bytes
    )
