"""Multi-seed checkpoint suites behind one interface.

A suite answers: which sizes, seeds and steps exist, and how to load one checkpoint's model and
the suite's tokenizer. `LocalSuite` reads a directory laid out `<size>-seed<n>/step<N>/` with
Hugging Face files (the mini suites, or a user's own training runs); `HubSuite` loads PolyPythia
and `MultiBertSuite` loads MultiBERT from the Hugging Face Hub by repo id and revision.

A suite's `objective` says how its models predict: `causal` (the next token, from the tokens
before it) or `masked` (a masked token, from the tokens on both sides).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download, list_repo_refs
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
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

# PolyPythia's 154 checkpoints: log-spaced to 512, then every 1000 steps to 143000.
PYTHIA_STEPS: tuple[int, ...] = (0, *(2**i for i in range(10)), *range(1000, 143_001, 1000))
SAFETENSORS = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
# MultiBERT (Sellam et al. 2022): 25 seeds of BERT-base at 2M steps; seeds 0-4 also keep their
# checkpoints at step 0, every 20k steps to 200k, then every 100k to 2M (29 in all).
MULTIBERT_STEPS: tuple[int, ...] = (*range(0, 200_001, 20_000), *range(300_000, 2_000_001, 100_000))
# Heads whose class names say the model predicts masked tokens.
MASKED_ARCHITECTURE_SUFFIXES = ("ForMaskedLM", "ForPreTraining")


def objective_of(config: PretrainedConfig | dict) -> str:
    """'masked' for a masked-LM checkpoint (BERT and kin), else 'causal', from its config."""
    architectures = (config.get("architectures") if isinstance(config, dict) else config.architectures) or []
    return "masked" if any(a.endswith(MASKED_ARCHITECTURE_SUFFIXES) for a in architectures) else "causal"


class SuiteUnavailable(RuntimeError):
    """A checkpoint or tokenizer cannot be loaded; the message says which and why."""


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
        """Steps for which every seed of `size` has a checkpoint."""

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
        """Every (size, step) whose seeds are all present: one extraction partition each."""
        return [(size, step) for size in self.sizes() for step in self.steps(size)]


def _load_lm(source: str, device: torch.device, objective: str = "causal", **kwargs) -> PreTrainedModel:
    auto = AutoModelForMaskedLM if objective == "masked" else AutoModelForCausalLM
    model = auto.from_pretrained(source, dtype=torch.float32, **kwargs)
    return model.to(device).eval()


class LocalSuite(Suite):
    """Checkpoints on disk: `<root>/<size>-seed<n>/step<N>/` with config.json and weights.

    The tokenizer is read from `<root>/tokenizer/`, or else from the first checkpoint folder.
    A checkpoint folder counts only once its weights file exists, so a trainer that writes
    folders atomically never exposes half a checkpoint.
    """

    RUN_PATTERN = re.compile(r"(?P<size>.+)-seed(?P<seed>\d+)")
    STEP_PATTERN = re.compile(r"step(?P<step>\d+)")

    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = Path(root)

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
            for seed in self.seeds(size)[:1]:
                for step in self.steps(size)[:1]:
                    config = Path(self.checkpoint(size, seed, step).source) / "config.json"
                    return objective_of(json.loads(config.read_text()))
        return "causal"

    def sizes(self) -> list[str]:
        return sorted(self._runs())

    def seeds(self, size: str) -> list[int]:
        return sorted(self._runs().get(size, {}))

    def steps(self, size: str) -> list[int]:
        run_dirs = self._runs().get(size, {}).values()
        step_sets = [self._complete_steps(run_dir) for run_dir in run_dirs]
        return sorted(set.intersection(*step_sets)) if step_sets else []

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
            for seed in self.seeds(size)[:1]:
                candidates += [Path(self.checkpoint(size, seed, step).source) for step in self.steps(size)[:1]]
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
    """PolyPythia on the Hugging Face Hub: `EleutherAI/pythia-<size>-seed<n>` at `step<N>`.

    Seed 0 is the original `EleutherAI/pythia-<size>`. Nothing here can be listed offline, so
    sizes, seeds and steps come from the configuration.
    """

    def __init__(self, name: str, sizes: tuple[str, ...], seeds: tuple[int, ...], steps: tuple[int, ...] = ()):
        self.name = name
        self._sizes = list(sizes)
        self._seeds = sorted(seeds)
        self._steps = sorted(steps or PYTHIA_STEPS)

    @staticmethod
    def repo_id(size: str, seed: int) -> str:
        return f"EleutherAI/pythia-{size}" if seed == 0 else f"EleutherAI/pythia-{size}-seed{seed}"

    @staticmethod
    def revision(step: int) -> str:
        return f"step{step}"

    def sizes(self) -> list[str]:
        return list(self._sizes)

    def seeds(self, size: str) -> list[int]:
        return list(self._seeds)

    def steps(self, size: str) -> list[int]:
        return list(self._steps)

    def published_steps(self, size: str) -> list[int]:
        """The steps every seed of `size` has a revision for on the Hub now (branches `step<N>`),
        listed online; SuiteUnavailable when the Hub cannot be reached."""
        common: set[int] | None = None
        for seed in self._seeds:
            repo = self.repo_id(size, seed)
            try:
                branches = list_repo_refs(repo).branches
            # Broad on purpose: without a network the HTTP client raises its own error types,
            # which are neither OSError nor the Hub's; offline is not a fault of the suite.
            except Exception as error:
                message = f"cannot list the revisions of {repo} on the Hugging Face Hub: {error}"
                raise SuiteUnavailable(message) from error
            steps = {int(m["step"]) for b in branches if (m := re.fullmatch(r"step(?P<step>\d+)", b.name))}
            common = steps if common is None else common & steps
        return sorted(common or ())

    def checkpoint(self, size: str, seed: int, step: int) -> Checkpoint:
        return Checkpoint(self.name, size, seed, step, f"{self.repo_id(size, seed)}@{self.revision(step)}")

    def load_model(self, checkpoint: Checkpoint, device: torch.device) -> PreTrainedModel:
        repo, revision = checkpoint.source.split("@")
        try:
            return _load_lm(repo, device, self.objective, revision=revision)
        except OSError as error:
            raise SuiteUnavailable(
                f"cannot load {repo} at revision {revision} from the Hugging Face Hub "
                f"(offline, or not in the local Hugging Face cache): {error}"
            ) from error

    def weights_folder(self, checkpoint: Checkpoint) -> Path:
        """The revision's snapshot in the Hugging Face cache, downloading what is missing.

        Only the config and one copy of the weights are fetched: safetensors (whole or sharded)
        where the revision has them, else the torch pickle.
        """
        repo, revision = checkpoint.source.split("@")
        try:
            folder = Path(hf_hub_download(repo, "config.json", revision=revision)).parent
        except RepositoryNotFoundError as error:
            raise SuiteUnavailable(
                f"{repo} does not exist on the Hugging Face Hub (or is private): check the suite's sizes and seeds"
            ) from error
        except RevisionNotFoundError as error:
            raise SuiteUnavailable(f"{repo} has no revision {revision}: check the suite's steps") from error
        except (OSError, HfHubHTTPError) as error:
            raise SuiteUnavailable(
                f"cannot load {repo} at revision {revision} from the Hugging Face Hub "
                f"(offline, or not in the local Hugging Face cache): {error}"
            ) from error
        for name in (SAFETENSORS, SAFETENSORS_INDEX, TORCH_WEIGHTS):
            try:
                hf_hub_download(repo, name, revision=revision)
            except (OSError, HfHubHTTPError):
                continue
            if name == SAFETENSORS_INDEX:
                for shard in weight_files(folder):
                    hf_hub_download(repo, shard.name, revision=revision)
            return folder
        raise SuiteUnavailable(f"{repo} at revision {revision} has no weights file ({SAFETENSORS}, {TORCH_WEIGHTS})")

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        repo = self.repo_id(self._sizes[0], 0)
        try:
            return AutoTokenizer.from_pretrained(repo)
        except OSError as error:
            raise SuiteUnavailable(
                f"cannot load the tokenizer of {repo} from the Hugging Face Hub "
                f"(offline, or not in the local Hugging Face cache): {error}"
            ) from error


class MultiBertSuite(HubSuite):
    """MultiBERT on the Hugging Face Hub: `google/multiberts-seed_<n>-step_<k>k`, one size ("base").

    The final checkpoint of each seed is also `google/multiberts-seed_<n>`; the step-named repos
    are used throughout so that every step is addressed the same way. Steps are given in training
    steps (multiples of 1000).
    """

    SIZE = "base"

    def __init__(self, name: str, seeds: tuple[int, ...], steps: tuple[int, ...] = ()):
        super().__init__(name, (self.SIZE,), seeds, steps or MULTIBERT_STEPS)
        uneven = [step for step in self._steps if step % 1000]
        if uneven:
            raise SuiteUnavailable(f"MultiBERT publishes checkpoints at multiples of 1000 steps, not {uneven}")

    @property
    def objective(self) -> str:
        return "masked"

    @staticmethod
    def repo_id(size: str, seed: int, step: int | None = None) -> str:
        return f"google/multiberts-seed_{seed}-step_{(step or 0) // 1000}k"

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
        return LocalSuite(config.name, config.path)
    if config.kind == "multibert":
        return MultiBertSuite(config.name, config.seeds, config.steps)
    return HubSuite(config.name, config.sizes, config.seeds, config.steps)
