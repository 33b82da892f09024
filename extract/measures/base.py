"""What every measure shares: one block of the extraction, declared once and found by everything.

A measure takes something from each seed of a checkpoint partition while its weights are loaded
(the ICL score, the activation fingerprint, the log-likelihood vector, ...) and turns what it
took from every seed into the partition's tables. It declares those tables (`tables`), the
per-suite input tables it is run on (`inputs`, built by `build_inputs` with the evaluation set),
and the name of its phase in the manifest's `timings_s`. Its settings come as constructor
arguments through `for_suite`. A measure whose tables a suite's objective does not have is not
run on that suite.

Token statistics and the pair KL are not a `Measure`: they need every seed's distributions at
once and are the engine's own second phase (extract/engine/extractor.py,
extract/measures/token_distributions.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers import PreTrainedTokenizerBase

from extract.config import Settings
from extract.engine.skeleton import Head, Skeleton
from extract.inputs.brown_corpus import Document
from extract.inputs.eval_tokens import EvalSetError
from extract.lake.tables import LakeTable
from extract.measures.token_distributions import StatisticsKernels
from extract.sources.checkpoint_reader import CheckpointWeights
from extract.sources.suites import Checkpoint, Suite


class ExtractionError(RuntimeError):
    """The checkpoint's models cannot be compared; the message names the seed and the fault."""


class NonFiniteOutputs(ExtractionError):
    """A seed's model gives NaN or infinite numbers; the message names the checkpoint and which."""


@dataclass(frozen=True)
class SuiteContext:
    """What a measure of one suite is built from: the settings, the suite, its tokenizer and the
    suite's input tables in the lake."""

    settings: Settings
    suite: Suite
    tokenizer: PreTrainedTokenizerBase
    bos: int  # the token every text is fed behind ([CLS] for a masked LM)

    @property
    def lake(self) -> Path:
        return self.settings.paths.lake

    def read(self, table: LakeTable) -> pa.Table:
        return read_suite_table(self.lake, table, self.suite.name)


def read_suite_table(lake: Path, table: LakeTable, suite_name: str) -> pa.Table:
    """A per-suite table of the lake; EvalSetError naming the file when it is missing."""
    path = table.path(lake, suite_name)
    if not path.exists():
        raise EvalSetError(f"{path} is missing: rebuild the eval set of suite {suite_name!r}")
    return pq.read_table(path)


@dataclass(frozen=True)
class SeedModel:
    """One seed's checkpoint as the measures see it: its weights and, loaded, its model."""

    checkpoint: Checkpoint
    weights: CheckpointWeights
    skeleton: Skeleton | None  # None for a measure that needs no model
    head: Head | None  # the fp32 output embedding
    device: torch.device
    masked: bool
    kernels: StatisticsKernels
    chunk_bytes: int  # at most this much of fp32 logits at once (extraction.chunk_mib)
    # The evaluation tokens' positions, and the loaded model's states there [N, H] in that order
    # (what the output embedding is applied to); `eval_states(layers)` runs the evaluation pass
    # again on whatever weights the skeleton holds: [N, H], or the logit lens's [L, N, H].
    positions: np.ndarray | None = None
    eval_hidden: torch.Tensor | None = None
    eval_states: Callable[[tuple[int, ...] | None], torch.Tensor] | None = None

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.skeleton.hidden_states(input_ids, attention_mask)

    def target_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(targets) [M] from the body's hidden states [M, H]: the fp32 unembedding and the
        log-softmax at the target, a fixed number of rows at a time (the last chunk padded), into
        one reused logits buffer, keeping nothing else."""
        vocab = self.head.vocab
        # A power of two at least the rows asked for, up to LOGIT_ROWS: few shapes to compile, and
        # a small call (ICL's one position per sequence) is not padded to a large chunk.
        wanted = 1 << max(0, len(targets) - 1).bit_length()
        rows = max(1, min(self.chunk_bytes // (vocab * 4), LOGIT_ROWS, wanted))
        logits = self.kernels.buffer(rows, vocab, device=self.device)
        padded = torch.zeros(-(-len(targets) // rows) * rows, dtype=torch.int64, device=self.device)
        padded[: len(targets)] = targets
        out = torch.empty(len(targets), dtype=torch.float32, device=self.device)
        for start in range(0, len(targets), rows):
            chunk = hidden[start : start + rows]
            self.head.logits(chunk, out=logits[: len(chunk)])
            out[start : start + len(chunk)] = self.kernels.target_log_probs(logits, padded[start : start + rows])[
                : len(chunk)
            ]
        return out


# Rows of logits per unembedding chunk of the text measures: enough for an efficient product
# (measured at 50,304: 1,024 rows 20% faster than 256), few enough to waste little padding.
LOGIT_ROWS = 1024


class Measure(ABC):
    tables: ClassVar[tuple[LakeTable, ...]]  # the partition tables it writes
    inputs: ClassVar[tuple[LakeTable, ...]] = ()  # the per-suite tables it is run on
    phase: ClassVar[str]  # its seconds in the manifest's timings_s
    # False: measured from the checkpoint's weights alone, before any model is loaded, for every
    # seed (identical weights too); True: from the loaded model, once per distinct checkpoint.
    needs_model: ClassVar[bool] = True

    @classmethod
    def applies_to(cls, objective: str) -> bool:
        return all(table.applies_to(objective) for table in cls.tables)

    @classmethod
    def build_inputs(
        cls, settings: Settings, tokenizer: PreTrainedTokenizerBase, heldout: Sequence[Document]
    ) -> dict[str, pa.Table]:
        """The per-suite input tables, from the held-out documents (written with the evaluation set)."""
        return {}

    @classmethod
    @abstractmethod
    def for_suite(cls, context: SuiteContext) -> Measure:
        """The measure with its settings and inputs, ready to run on the suite's checkpoints."""

    @abstractmethod
    def measure_seed(self, model: SeedModel) -> Any:
        """What the partition keeps of one seed; NonFiniteOutputs when that is not finite."""

    @abstractmethod
    def partition_tables(self, per_seed: dict[int, Any]) -> dict[str, pa.Table]:
        """The partition's tables from every seed's result, seeds in the suite's order."""

    def identity(self) -> dict:
        """What the manifest records of the measure's inputs and settings."""
        return {}
