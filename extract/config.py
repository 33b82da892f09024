"""The project's settings: where the warehouse lives and what to evaluate on which suites.

Settings come from `seedconv.toml` at the repository root (or the file named by
`SEEDCONV_CONFIG`); the warehouse root can be moved with `SEEDCONV_WAREHOUSE`. Every value is
checked here, once, so that a bad setting fails with its name before any work starts.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from extract.sources.hub_repos import repo_pattern_problem

REPO_ROOT = Path(__file__).resolve().parent.parent
# A source named "hub:<dataset id>" is a Hugging Face dataset (BLiMP, an evaluation corpus).
HUB_PREFIX = "hub:"
# The transformer body's forward precisions (extract/engine/skeleton.py, `Precision`); the first
# is the default.
FORWARD_PRECISIONS = ("float32", "tf32", "bfloat16")


class ConfigError(ValueError):
    """A setting is missing or out of range; the message names it."""


def _check_range(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class WarehousePaths:
    """Every place the pipeline reads or writes, derived from one root."""

    root: Path

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def nltk_data(self) -> Path:
        return self.cache / "nltk_data"

    @property
    def suites(self) -> Path:
        return self.root / "suites"

    @property
    def duckdb(self) -> Path:
        return self.root / "seedconv.duckdb"

    @property
    def published_duckdb(self) -> Path:
        return self.root / "published" / "seedconv.duckdb"

    @property
    def reports(self) -> Path:
        return self.root / "reports"


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation tokens every checkpoint is run on; per suite, [[suites]]'s `eval` overrides it."""

    # Where the text comes from (extract/inputs/text_corpus.py): "brown" (held-out Brown), a path
    # (a .txt file, a folder of them, or a .jsonl/.parquet/.csv file), or "hub:<dataset id>".
    corpus: str = "brown"
    text_column: str = "text"  # the column holding each document's text (JSON lines, Parquet, CSV, datasets)
    split: str = "validation"  # the split of a hub dataset
    subset: str | None = None  # the configuration of a hub dataset that has several (wikitext-103-raw-v1)
    sample_seed: int | None = None  # documents in a random order seeded by this; unset: the corpus's order
    # The unigram reference (KL to unigram, token frequencies): "train" (Brown's training split, the
    # mini suites' training data), a source as for `corpus`, or a Parquet file of token_id, count.
    unigram: str = "train"
    # What the frequency bins count: "eval" (the evaluation tokens), "unigram" (the unigram
    # reference's counts), or a source as for `unigram` (the paper counts the Pile's validation split).
    frequency: str = "eval"
    n_tokens: int = 5000  # about the paper's 4,662
    window: int = 128  # tokens per window, the model's context; context_len runs 0 .. window - 1
    # Tokens between window starts; unset: the window (no overlap). With overlap, each token is
    # scored once, in the window that gives it the most context (each window after a document's
    # first keeps its last `stride` predictions), as the published code's 2,048/1,024 scheme does.
    stride: int | None = None
    heldout_every: int = 25  # every 25th Brown document is held out of training
    top_k: int = 32
    batch_windows: int = 32  # windows per forward pass
    # Masked LMs: each target is predicted from its own masked copy of its window, so a window of
    # L tokens costs L passes of L + 2 tokens; a shorter window keeps that affordable.
    masked_window: int = 32
    batch_masked: int = 256  # masked LMs: masked copies of windows per forward pass (one per target)

    def __post_init__(self) -> None:
        for name in ("corpus", "text_column", "split", "unigram", "frequency"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"eval.{name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.sample_seed is not None:
            _check_range("eval.sample_seed", self.sample_seed, 0, 2**63 - 1)
        _check_range("eval.n_tokens", self.n_tokens, 1, 10_000_000)
        _check_range("eval.window", self.window, 2, 1_000_000)
        if self.stride is not None:
            _check_range("eval.stride", self.stride, 1, 1_000_000)
            if self.stride > self.window:
                raise ConfigError(
                    f"eval.stride ({self.stride}) is larger than eval.window ({self.window}): the tokens "
                    "between windows would never be scored"
                )
        _check_range("eval.heldout_every", self.heldout_every, 2, 500)
        _check_range("eval.top_k", self.top_k, 1, 1_000_000)
        _check_range("eval.batch_windows", self.batch_windows, 1, 100_000)
        _check_range("eval.batch_masked", self.batch_masked, 1, 1_000_000)
        _check_range("eval.masked_window", self.masked_window, 2, 1_000_000)

    @property
    def window_stride(self) -> int:
        return self.window if self.stride is None else self.stride


@dataclass(frozen=True)
class ExtractionConfig:
    """How the extraction uses the machine; none of these change a stored number beyond rounding."""

    dtype: str = "float32"  # the transformer body's forward precision: float32, tf32 or bfloat16
    chunk_mib: int = 1024  # device memory for one chunk's fp32 vocabulary-sized tensors
    prefetch: int = 2  # checkpoints read ahead on a background thread
    compile: bool = True  # torch.compile the transformer body, once per architecture

    def __post_init__(self) -> None:
        if not isinstance(self.compile, bool):
            raise ConfigError(f"extraction.compile must be true or false, got {self.compile!r}")
        if self.dtype == "auto":
            # "auto" meant bf16 on GPUs; a setting that changes the numbers should be written out.
            raise ConfigError(
                'extraction.dtype = "auto" is no longer accepted: the transformer body runs in fp32 by default '
                'on every device. Write dtype = "float32" (or leave it out) for that, or "bfloat16" / "tf32" '
                "to opt into a faster, less exact forward (docs/performance.md, Forward precision)"
            )
        if self.dtype not in FORWARD_PRECISIONS:
            raise ConfigError(f"extraction.dtype must be one of {', '.join(FORWARD_PRECISIONS)}, got {self.dtype!r}")
        _check_range("extraction.chunk_mib", self.chunk_mib, 1, 1_000_000)
        _check_range("extraction.prefetch", self.prefetch, 1, 64)

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_mib << 20


@dataclass(frozen=True)
class IclConfig:
    """The in-context-learning score: a token's surprisal with a short minus a long context."""

    short_context: int = 50
    long_context: int = 400
    # 0-based index of the scored token in each sequence: 499 is the 500th token, the one Fehlauer
    # et al. score ("a sentence's 500th token", footnote 2); 500 would be the 501st.
    target_position: int = 499
    max_sequences: int = 64
    batch_sequences: int = 16  # sequences per forward pass

    def __post_init__(self) -> None:
        _check_range("icl.short_context", self.short_context, 1, 1_000_000)
        _check_range("icl.long_context", self.long_context, 1, 1_000_000)
        _check_range("icl.target_position", self.target_position, 1, 1_000_000)
        _check_range("icl.max_sequences", self.max_sequences, 1, 10_000_000)
        _check_range("icl.batch_sequences", self.batch_sequences, 1, 100_000)
        if self.long_context <= self.short_context:
            raise ConfigError(
                f"icl.long_context ({self.long_context}) must exceed icl.short_context ({self.short_context})"
            )
        if self.target_position < self.long_context:
            raise ConfigError(
                f"icl.target_position ({self.target_position}) must be at least icl.long_context "
                f"({self.long_context}): the long context is the tokens before the target"
            )


@dataclass(frozen=True)
class FingerprintConfig:
    """The probe set of the activation fingerprints (McEntire 2026); see extract/fingerprints.py."""

    corpus_probes: int = 32  # paragraph openings of the held-out Brown documents
    arithmetic_probes: int = 16  # "37 + 45 = 82"
    factual_probes: int = 16  # short statements of fact, from a fixed list
    random_probes: int = 16  # random strings of letters, digits and punctuation
    max_tokens: int = 64  # probes are cut to this many tokens
    batch_probes: int = 32  # probes per forward pass
    probes_file: Path | None = None  # one probe per line; replaces the generated probes

    def __post_init__(self) -> None:
        for name in ("corpus_probes", "arithmetic_probes", "factual_probes", "random_probes"):
            _check_range(f"fingerprint.{name}", getattr(self, name), 0, 100_000)
        _check_range("fingerprint.max_tokens", self.max_tokens, 1, 100_000)
        _check_range("fingerprint.batch_probes", self.batch_probes, 1, 100_000)
        if self.probes_file is None and self.n_generated == 0:
            raise ConfigError(
                "fingerprint: every probe count is 0 and no probes_file is named; a fingerprint needs probes"
            )

    @property
    def n_generated(self) -> int:
        return self.corpus_probes + self.arithmetic_probes + self.factual_probes + self.random_probes


@dataclass(frozen=True)
class LoglikConfig:
    """The texts of the log-likelihood vectors (Oyama et al. 2025; Kishino et al. 2026); see extract/loglik.py."""

    n_texts: int = 256  # held-out Brown paragraphs, in document order
    max_tokens: int = 64  # each paragraph is cut to its first max_tokens tokens
    min_tokens: int = 8  # shorter paragraphs (headings, one-liners) are skipped
    batch_texts: int = 32  # texts per forward pass

    def __post_init__(self) -> None:
        _check_range("loglik.n_texts", self.n_texts, 2, 10_000_000)
        _check_range("loglik.max_tokens", self.max_tokens, 1, 1_000_000)
        _check_range("loglik.min_tokens", self.min_tokens, 1, 1_000_000)
        _check_range("loglik.batch_texts", self.batch_texts, 1, 100_000)
        if self.min_tokens > self.max_tokens:
            raise ConfigError(f"loglik.min_tokens ({self.min_tokens}) exceeds loglik.max_tokens ({self.max_tokens})")


@dataclass(frozen=True)
class WeightsConfig:
    """Weight statistics; see extract/weight_stats.py."""

    sketch_dim: int = 4096  # count-sketch dimension: squared distances to about sqrt(2 / dim) = 2.2 %

    def __post_init__(self) -> None:
        _check_range("weights.sketch_dim", self.sketch_dim, 16, 1 << 24)


@dataclass(frozen=True)
class TrajectoryConfig:
    """Exact KL along each seed's training trajectory; see extract/measures/trajectory.py."""

    # Steps every later checkpoint of a seed is also compared with, besides the one before it: its
    # initialisation and two log-spaced steps (PolyPythia has all three; the mini suites 0 and 32). A
    # suite without one of them skips it. The diffusion exponents are fitted from each anchor. Each
    # anchor costs one more comparison per seed and partition (docs/performance.md).
    anchors: tuple[int, ...] = (0, 32, 2000)

    def __post_init__(self) -> None:
        if any(not isinstance(step, int) or step < 0 for step in self.anchors):
            raise ConfigError(f"trajectory.anchors must be steps (integers >= 0), got {list(self.anchors)}")
        if len(set(self.anchors)) != len(self.anchors):
            raise ConfigError(f"trajectory.anchors repeats a step: {list(self.anchors)}")


@dataclass(frozen=True)
class LayersConfig:
    """Seed convergence layer by layer through the logit lens; see extract/measures/layer_lens.py."""

    # Which layers: 0 is the embedding output, L (the model's number of layers) its last layer, whose
    # lens is the model's own output. Empty: every layer. A layer past a model's depth is an error.
    layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if any(not isinstance(layer, int) or layer < 0 for layer in self.layers):
            raise ConfigError(f"layers.layers must be layer indices (integers >= 0), got {list(self.layers)}")
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"layers.layers repeats a layer: {list(self.layers)}")


@dataclass(frozen=True)
class ClusterConfig:
    """Extraction across many GPU workers (docs/distributed.md). Empty `scheduler`: one machine."""

    # A Dask scheduler's address (tcp://host:8786) whose workers each hold one device; every
    # Dagster run's steps execute there. Empty: runs execute on the machine that launches them.
    scheduler: str = ""
    # Contiguous checkpoints per run of a backfill: each run reuses its model skeletons and reads
    # ahead, and the runs execute at once on as many workers as the `extraction` pool allows.
    partitions_per_run: int = 8
    # Workers, one per device: the `extraction` pool's limit (`python -m orchestration.cluster pools`).
    workers: int = 1

    def __post_init__(self) -> None:
        if self.scheduler and "://" not in self.scheduler:
            raise ConfigError(f"cluster.scheduler must be an address like tcp://host:8786, got {self.scheduler!r}")
        _check_range("cluster.partitions_per_run", self.partitions_per_run, 1, 1_000_000)
        _check_range("cluster.workers", self.workers, 1, 100_000)

    @property
    def distributed(self) -> bool:
        return bool(self.scheduler)


# How the seed-and-context bootstrap resamples the contexts (analysis/bootstrap.py).
BOOTSTRAP_UNITS = ("window", "document")


@dataclass(frozen=True)
class BootstrapConfig:
    """The intervals of E[conv] and of its differences: a bootstrap over seeds and contexts at once
    (Sellam et al. 2022's multi-bootstrap); see analysis/bootstrap.py."""

    n_boot: int = 1000  # bootstrap replicates
    level: float = 0.95  # of the percentile intervals
    unit: str = "window"  # contexts are resampled by evaluation window, or by "document"
    seed: int = 0  # of the resampling: the same warehouse gives the same intervals

    def __post_init__(self) -> None:
        _check_range("bootstrap.n_boot", self.n_boot, 100, 1_000_000)
        if not 0.5 <= self.level < 1:
            raise ConfigError(f"bootstrap.level must be in [0.5, 1), got {self.level}")
        if self.unit not in BOOTSTRAP_UNITS:
            raise ConfigError(f"bootstrap.unit must be one of {BOOTSTRAP_UNITS}, got {self.unit!r}")


# The slim BLiMP copy shipped beside the project (../shared/data/blimp, CC BY 4.0; see its README).
SHARED_BLIMP = REPO_ROOT.parent / "shared" / "data" / "blimp" / "blimp_slim.jsonl.gz"


@dataclass(frozen=True)
class BlimpConfig:
    """BLiMP minimal pairs scored by every causal model; see extract/blimp.py."""

    # A .jsonl or .jsonl.gz file, a folder of BLiMP's per-paradigm .jsonl files, or
    # "hub:nyu-mll/blimp" for the Hugging Face dataset (needs internet or a filled cache).
    source: str = str(SHARED_BLIMP)
    pairs_per_paradigm: int = 20  # the first pairs of each paradigm, by pairID
    paradigms: tuple[str, ...] = ()  # paradigm UIDs to keep; empty: all 67
    append_eos: bool = False  # score the end-of-text token after each sentence too
    batch_sentences: int = 64  # sentences per forward pass

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ConfigError(f"blimp.source must be a path or 'hub:<dataset id>', got {self.source!r}")
        _check_range("blimp.pairs_per_paradigm", self.pairs_per_paradigm, 1, 1_000_000)
        _check_range("blimp.batch_sentences", self.batch_sentences, 1, 100_000)
        if not isinstance(self.append_eos, bool):
            raise ConfigError(f"blimp.append_eos must be true or false, got {self.append_eos!r}")
        if len(set(self.paradigms)) != len(self.paradigms):
            raise ConfigError(f"blimp.paradigms has duplicates: {list(self.paradigms)}")

    @property
    def hub_dataset(self) -> str | None:
        return self.source.removeprefix(HUB_PREFIX) if self.source.startswith(HUB_PREFIX) else None


@dataclass(frozen=True)
class MiniSizeConfig:
    """One model size of a self-trained suite (GPT-NeoX, or BERT for the masked suite)."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    section: str = "mini"  # the settings section it came from, for error messages

    def __post_init__(self) -> None:
        prefix = f"{self.section}.sizes.{self.name}"
        _check_range(f"{prefix}.hidden_size", self.hidden_size, 4, 65_536)
        _check_range(f"{prefix}.num_layers", self.num_layers, 1, 256)
        _check_range(f"{prefix}.num_heads", self.num_heads, 1, 256)
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"{prefix}: hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )


OBJECTIVES = ("causal", "masked")


@dataclass(frozen=True)
class MiniSuiteConfig:
    """A multi-seed suite the project trains itself on CPU: causal ([mini]) or masked ([mini_mlm])."""

    name: str = "mini"
    sizes: tuple[MiniSizeConfig, ...] = (
        MiniSizeConfig("s", hidden_size=32, num_layers=1, num_heads=2),
        MiniSizeConfig("m", hidden_size=64, num_layers=2, num_heads=4),
        MiniSizeConfig("l", hidden_size=96, num_layers=3, num_heads=4),
    )
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    vocab_size: int = 2048
    steps: int = 512  # checkpoints at 0, 1, 2, 4, ..., steps
    # and at every multiple of `every` (0: none): the fingerprint regimes' fixed step gap (dbt var
    # regime_gap, McEntire's 50) needs two checkpoints that far apart
    every: int = 50
    batch_size: int = 8
    seq_len: int = 128
    learning_rate: float = 3e-3
    warmup_steps: int = 16
    objective: str = "causal"  # causal: GPT-NeoX, next token; masked: BERT, masked tokens
    mask_probability: float = 0.15  # masked suites: share of training tokens masked (BERT's 80/10/10)
    enabled: bool = True  # false: the suite is neither trained nor evaluated

    @property
    def section(self) -> str:
        return "mini" if self.objective == "causal" else "mini_mlm"

    def __post_init__(self) -> None:
        section = self.section
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"{section}.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"{section}.enabled must be true or false, got {self.enabled!r}")
        if not self.sizes:
            raise ConfigError(f"{section}.sizes is empty: name at least one model size")
        if len(self.seeds) < 2:
            raise ConfigError(f"{section}.seeds needs at least two seeds to compare")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{section}.seeds has duplicates: {list(self.seeds)}")
        _check_range(f"{section}.vocab_size", self.vocab_size, 260, 1_000_000)
        _check_range(f"{section}.steps", self.steps, 1, 10_000_000)
        _check_range(f"{section}.every", self.every, 0, 10_000_000)
        _check_range(f"{section}.batch_size", self.batch_size, 1, 1_000_000)
        _check_range(f"{section}.seq_len", self.seq_len, 2, 1_000_000)
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"{section}.learning_rate must be in (0, 1), got {self.learning_rate}")
        if not 0 < self.mask_probability < 1:
            raise ConfigError(f"{section}.mask_probability must be in (0, 1), got {self.mask_probability}")


# The masked suite's defaults: BERT at the causal suite's two smaller shapes, the same seeds,
# data and log-spaced checkpoint schedule, without the causal suite's checkpoints every 50 steps
# (`every = 0`): it stands in for MultiBERT, whose checkpoints are 20,000 steps apart, so its
# fingerprint regimes are measured on log-spaced neighbours only, and `make demo` extracts 30
# partitions more for the causal suite's, not 50. Its learning rate is the one that, of 1e-3,
# 3e-3, 5e-3 and 1e-2, gave both sizes the lowest training loss on held-out blocks (BERT's
# masking) after 512 steps: 6.33 (s) and 6.37 nats (m), against the unigram's 6.54 and 6.55;
# 6.52 and 6.41 at 1e-3, and size m diverged at 1e-2. Part of that gain is BERT's 10 % of
# targets left unmasked; a target masked alone, as the extraction scores it, is still predicted
# within 0.03 nats (KL) of the unigram distribution at step 512: 512 steps of 15 % masked targets
# teach these models little context (README, "A bigger mini suite").
MINI_MLM_DEFAULTS = {
    "name": "mini-mlm",
    "objective": "masked",
    "learning_rate": 5e-3,
    "every": 0,
    "sizes": (
        MiniSizeConfig("s", hidden_size=32, num_layers=1, num_heads=2, section="mini_mlm"),
        MiniSizeConfig("m", hidden_size=64, num_layers=2, num_heads=4, section="mini_mlm"),
    ),
}


SUITE_KINDS = ("local", "hub", "multibert")


@dataclass(frozen=True)
class SuiteConfig:
    """A suite to evaluate: `local` (a directory of checkpoints), `hub` (PolyPythia) or `multibert`."""

    name: str
    kind: str  # "local", "hub" or "multibert"
    path: Path | None = None  # local suites
    sizes: tuple[str, ...] = ()  # hub suites: which sizes (MultiBERT has one, "base")
    seeds: tuple[int, ...] = ()  # hub suites: which seeds
    steps: tuple[int, ...] = ()  # hub suites: which steps (empty: all the suite publishes)
    eval: EvalConfig | None = None  # [eval] with this suite's `eval` keys over it; None: [eval]
    # hub suites: the repositories, a built-in pattern's name (polypythia, data-seed, weight-seed)
    # or a pattern over {size} and {seed}; None: polypythia (extract/sources/hub_repos.py)
    repo_pattern: str | None = None
    # hub and MultiBERT suites: gigabytes (10^9 bytes) of the Hugging Face cache their repositories
    # may hold; over it, revisions already stored in the lake are deleted. None: no bound.
    cache_budget_gb: float | None = None
    # local suites: the step every run trains to, the suite's final checkpoint (final surprisal is
    # read there); None: not known, the last step extracted stands in. A hub or MultiBERT suite's
    # is its last configured (or published) step; a mini suite's its `steps`.
    final_step: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SUITE_KINDS:
            raise ConfigError(f"suites.{self.name}.kind must be one of {SUITE_KINDS}, got {self.kind!r}")
        if self.repo_pattern is not None:
            if self.kind != "hub":
                raise ConfigError(f"suites.{self.name}.repo_pattern is for hub suites, not {self.kind} ones")
            problem = repo_pattern_problem(self.repo_pattern)
            if problem is not None:
                raise ConfigError(f"suites.{self.name}.repo_pattern: {problem}")
        if self.cache_budget_gb is not None:
            if self.kind == "local":
                raise ConfigError(f"suites.{self.name}.cache_budget_gb is for hub and multibert suites, not local ones")
            budget = self.cache_budget_gb
            if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget < 1e6:
                raise ConfigError(
                    f"suites.{self.name}.cache_budget_gb must be a number of gigabytes above 0, got {budget!r}"
                )
        if self.kind == "local" and self.path is None:
            raise ConfigError(f"suites.{self.name}: a local suite needs a path")
        if self.final_step is not None:
            if self.kind != "local":
                raise ConfigError(
                    f"suites.{self.name}.final_step is for local suites; a {self.kind} suite's is its last step"
                )
            _check_range(f"suites.{self.name}.final_step", self.final_step, 0, 10**12)
        if self.kind == "hub" and not self.sizes:
            raise ConfigError(f"suites.{self.name}: a hub suite needs sizes")
        if self.kind == "multibert" and self.sizes not in ((), ("base",)):
            raise ConfigError(f"suites.{self.name}: MultiBERT has one size, 'base'; got sizes {list(self.sizes)}")
        if self.kind != "local" and len(self.seeds) < 2:
            raise ConfigError(f"suites.{self.name}: a {self.kind} suite needs at least two seeds")
        if any(c in self.name for c in "|/= "):
            raise ConfigError(f"suite name {self.name!r} may not contain '|', '/', '=' or spaces")

    @property
    def cache_budget_bytes(self) -> int | None:
        return None if self.cache_budget_gb is None else int(self.cache_budget_gb * 1e9)


@dataclass(frozen=True)
class Settings:
    paths: WarehousePaths
    eval: EvalConfig = field(default_factory=EvalConfig)
    mini: MiniSuiteConfig = field(default_factory=MiniSuiteConfig)
    suites: tuple[SuiteConfig, ...] = ()  # besides the mini suites
    icl: IclConfig = field(default_factory=IclConfig)
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    fingerprint: FingerprintConfig = field(default_factory=FingerprintConfig)
    loglik: LoglikConfig = field(default_factory=LoglikConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    blimp: BlimpConfig = field(default_factory=BlimpConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    layers: LayersConfig = field(default_factory=LayersConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    mini_mlm: MiniSuiteConfig = field(default_factory=lambda: MiniSuiteConfig(**MINI_MLM_DEFAULTS))

    @property
    def mini_suites(self) -> tuple[MiniSuiteConfig, ...]:
        """The self-trained suites that are enabled: the causal one, then the masked one."""
        return tuple(mini for mini in (self.mini, self.mini_mlm) if mini.enabled)

    @property
    def all_suites(self) -> tuple[SuiteConfig, ...]:
        """The enabled self-trained suites and the configured ones."""
        minis = tuple(
            SuiteConfig(name=mini.name, kind="local", path=self.paths.suites / mini.name, final_step=mini.steps)
            for mini in self.mini_suites
        )
        return (*minis, *self.suites)

    def eval_for(self, suite: str) -> EvalConfig:
        """The evaluation settings of one suite: its own `eval` keys over [eval]."""
        return self.suite(suite).eval or self.eval

    def suite(self, name: str) -> SuiteConfig:
        for suite in self.all_suites:
            if suite.name == name:
                return suite
        raise ConfigError(f"no suite named {name!r}; configured: {[s.name for s in self.suites]}")


def _section(raw: dict, name: str, cls):
    values = raw.get(name, {})
    known = set(cls.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown keys in [{name}]: {sorted(unknown)}; known: {sorted(known)}")
    return values


def parse_settings(raw: dict, warehouse_root: Path, base_dir: Path = REPO_ROOT) -> Settings:
    """Builds Settings from a parsed TOML document (a pure function, for tests)."""
    eval_values = _eval_sources(_section(raw, "eval", EvalConfig), base_dir)
    eval_config = EvalConfig(**eval_values)
    icl = IclConfig(**_section(raw, "icl", IclConfig))
    extraction = ExtractionConfig(**_section(raw, "extraction", ExtractionConfig))
    fingerprint_values = dict(_section(raw, "fingerprint", FingerprintConfig))
    if fingerprint_values.get("probes_file"):
        path = Path(fingerprint_values["probes_file"])
        fingerprint_values["probes_file"] = path if path.is_absolute() else base_dir / path
    else:
        fingerprint_values.pop("probes_file", None)
    fingerprint = FingerprintConfig(**fingerprint_values)
    loglik = LoglikConfig(**_section(raw, "loglik", LoglikConfig))
    weights = WeightsConfig(**_section(raw, "weights", WeightsConfig))
    blimp_values = dict(_section(raw, "blimp", BlimpConfig))
    if "paradigms" in blimp_values:
        blimp_values["paradigms"] = tuple(blimp_values["paradigms"])
    source = blimp_values.get("source")
    if isinstance(source, str) and source and not source.startswith(HUB_PREFIX):
        blimp_values["source"] = str(Path(source) if Path(source).is_absolute() else base_dir / source)
    blimp = BlimpConfig(**blimp_values)
    bootstrap = BootstrapConfig(**_section(raw, "bootstrap", BootstrapConfig))
    trajectory_values = dict(_section(raw, "trajectory", TrajectoryConfig))
    if "anchors" in trajectory_values:
        trajectory_values["anchors"] = tuple(trajectory_values["anchors"])
    trajectory = TrajectoryConfig(**trajectory_values)
    layers_values = dict(_section(raw, "layers", LayersConfig))
    if "layers" in layers_values:
        layers_values["layers"] = tuple(layers_values["layers"])
    layers = LayersConfig(**layers_values)
    cluster = ClusterConfig(**_section(raw, "cluster", ClusterConfig))
    mini = _mini_suite(raw, "mini", {})
    mini_mlm = _mini_suite(raw, "mini_mlm", MINI_MLM_DEFAULTS)

    suites = []
    for spec in raw.get("suites", []):
        spec = dict(spec)
        if "path" in spec:
            path = Path(spec["path"])
            spec["path"] = path if path.is_absolute() else (base_dir / path)
        for key in ("sizes", "seeds", "steps"):
            if key in spec:
                spec[key] = tuple(spec[key])
        if "eval" in spec:
            overrides = spec["eval"]
            unknown = set(overrides) - set(EvalConfig.__dataclass_fields__)
            if unknown:
                raise ConfigError(f"unknown keys in suites.{spec.get('name')}.eval: {sorted(unknown)}")
            spec["eval"] = EvalConfig(**{**eval_values, **_eval_sources(overrides, base_dir)})
        try:
            suites.append(SuiteConfig(**spec))
        except TypeError as error:
            raise ConfigError(f"bad [[suites]] entry {spec}: {error}") from None
    names = [m.name for m in (mini, mini_mlm) if m.enabled] + [s.name for s in suites]
    if len(set(names)) != len(names):
        raise ConfigError(f"suite names must be unique, got {names}")
    if not names:
        raise ConfigError("no suite to evaluate: both mini suites are disabled and no [[suites]] is configured")
    return Settings(
        WarehousePaths(warehouse_root),
        eval_config,
        mini,
        tuple(suites),
        icl=icl,
        extraction=extraction,
        fingerprint=fingerprint,
        loglik=loglik,
        weights=weights,
        blimp=blimp,
        bootstrap=bootstrap,
        trajectory=trajectory,
        layers=layers,
        cluster=cluster,
        mini_mlm=mini_mlm,
    )


def _eval_sources(values: dict, base_dir: Path) -> dict:
    """[eval] keys with the `corpus`, `unigram` and `frequency` paths made absolute (relative to the config file)."""
    values = dict(values)
    keywords = {"corpus": ("brown",), "unigram": ("train",), "frequency": ("eval", "unigram", "train")}
    for key, names in keywords.items():
        source = values.get(key)
        if isinstance(source, str) and source and source not in names and not source.startswith(HUB_PREFIX):
            values[key] = str(Path(source) if Path(source).is_absolute() else base_dir / source)
    return values


def _mini_suite(raw: dict, section: str, defaults: dict) -> MiniSuiteConfig:
    """[mini] or [mini_mlm]: the section's keys over the suite's defaults."""
    values = {**defaults, **_section(raw, section, MiniSuiteConfig)}
    objective = "causal" if section == "mini" else "masked"
    if values.get("objective", objective) != objective:
        raise ConfigError(f"{section}.objective is fixed to {objective!r}, got {values['objective']!r}")
    values["objective"] = objective
    if isinstance(values.get("sizes"), dict):
        values["sizes"] = tuple(
            MiniSizeConfig(name=name, section=section, **spec) for name, spec in values["sizes"].items()
        )
    if "seeds" in values:
        values["seeds"] = tuple(values["seeds"])
    return MiniSuiteConfig(**values)


def load_settings(config_path: Path | str | None = None, warehouse_root: Path | str | None = None) -> Settings:
    """Reads seedconv.toml (or $SEEDCONV_CONFIG); the root is $SEEDCONV_WAREHOUSE or warehouse/."""
    config_path = Path(config_path or os.environ.get("SEEDCONV_CONFIG", REPO_ROOT / "seedconv.toml"))
    if not config_path.exists():
        raise ConfigError(f"config file not found: {config_path}")
    with config_path.open("rb") as handle:
        try:
            raw = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{config_path} is not valid TOML: {error}") from None
    root = Path(warehouse_root or os.environ.get("SEEDCONV_WAREHOUSE") or REPO_ROOT / "warehouse").resolve()
    return parse_settings(raw, root, base_dir=config_path.resolve().parent)
