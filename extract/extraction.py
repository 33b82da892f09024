"""Extraction partitions: every seed of a (suite, size, step) on the evaluation tokens.

A partition runs in two phases, so that only one model's activations and one chunk of
vocabulary-sized tensors are ever on the device:

1. Per seed, in turn: the checkpoint (read ahead on a background thread while the previous seed
   computes) is copied into a model skeleton kept on the device, the transformer body runs over
   every evaluation window, and its last hidden states [N, H] are kept. The ICL score, the
   activation fingerprint, the log-likelihood vector and the BLiMP sentence scores run here too,
   and the weight statistics are taken from the checkpoint's tensors in CPU memory. A seed whose
   weights hash equals an earlier seed's reuses that seed's model outputs. A masked LM runs every
   target's masked copy of its window instead (extract/evalset.py, `MaskedEvalBatches`) and keeps
   the hidden state at the masked position; the ICL score, the log-likelihood vector and BLiMP
   need a left-to-right probability of text and are not taken for it.
2. Per chunk of tokens: every seed's fp32 logits are computed from its hidden states and its fp32
   output embedding, and the per-token statistics and the exact pairwise KLs are taken from them
   on the device. The chunk's rows are sized so that vocabulary-sized tensors stay under
   `chunk_bytes`, whatever the number of seeds, the vocabulary or the number of tokens.

Only scalars and the top-k leave the device. `Extractor.extract_many` runs a sequence of
partitions with one reader and one set of skeletons, so loading overlaps computing across
partition boundaries too.

A seed whose model gives NaN or infinite numbers (output-embedding weights, activations, logits,
or the probes' scores) makes its partition a `Quarantine` instead of an `Extraction`: the reasons,
seed by seed, and nothing to write. A diverged training run is a fact about the checkpoint, not a
fault of the run, so the partitions after it in a range are extracted as usual.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from extract.blimp import blimp_scores_table
from extract.config import IclConfig
from extract.distributions import log_probs, pairwise_kl, token_statistics, unigram_log_probs
from extract.evalset import EvalBatches, EvalSetError, MaskedEvalBatches
from extract.fingerprints import ProbeBatch, fingerprints, fingerprints_table
from extract.icl import icl_scores_table, seed_surprisals
from extract.loglik import TextBatch, loglik_table, text_logprobs
from extract.skeleton import Head, Skeleton, architecture_key, forward_dtype
from extract.suites import Checkpoint, Suite, objective_of
from extract.weight_stats import (
    WeightHistory,
    WeightMismatch,
    count_sketch,
    weight_sketches_table,
    weight_statistics,
    weight_stats_table,
)
from extract.weights import CheckpointWeights, Prefetcher

TOKEN_STATS_SCHEMA = pa.schema(
    [
        ("seed", pa.int32()),
        ("position", pa.int32()),
        ("surprisal", pa.float32()),
        ("entropy", pa.float32()),
        ("kl_uniform", pa.float32()),
        ("kl_unigram", pa.float32()),
        ("topk_ids", pa.list_(pa.int32())),
        ("topk_logprobs", pa.list_(pa.float32())),
        ("tail_mass", pa.float32()),
    ]
)
PAIR_KL_SCHEMA = pa.schema(
    [("seed_a", pa.int32()), ("seed_b", pa.int32()), ("position", pa.int32()), ("kl", pa.float32())]
)
SCALAR_STATISTICS = ("surprisal", "entropy", "kl_uniform", "kl_unigram", "tail_mass")
DEFAULT_CHUNK_BYTES = 1 << 30
# fp32 [tokens, vocabulary] tensors alive at once per chunk: two per seed (logits and
# probabilities) and five more for the pair buffers and the statistics temporaries.
_VOCAB_TENSORS_PER_SEED, _VOCAB_TENSORS_EXTRA = 2, 5


class ExtractionError(RuntimeError):
    """The checkpoint's models cannot be compared; the message names the seed and the fault."""


class NonFiniteOutputs(ExtractionError):
    """A seed's model gives NaN or infinite numbers; the message names the checkpoint and which."""


@dataclass(frozen=True)
class Quarantine:
    """A partition that is not written because some seed's model gives NaN or infinite outputs."""

    suite: str
    size: str
    step: int
    reasons: dict[int, str]  # seed -> what is not finite, naming its checkpoint
    checkpoints: list[dict]  # seed, source, weights digest, bytes read

    def describe(self) -> str:
        return f"{self.suite}|{self.size}|step{self.step} is quarantined: " + "; ".join(
            f"seed {seed}: {reason}" for seed, reason in sorted(self.reasons.items())
        )


@dataclass(frozen=True)
class ProbeInputs:
    """What every seed is run on besides the evaluation windows and the ICL sequences."""

    probes: ProbeBatch  # the fingerprint probes
    texts: TextBatch  # the log-likelihood vector's texts
    batch_probes: int = 32
    batch_texts: int = 32
    sketch_dim: int = 4096
    blimp: TextBatch | None = None  # BLiMP sentences, good and bad of each pair interleaved
    batch_sentences: int = 64

    @property
    def probe_tokens(self) -> np.ndarray:
        return self.probes.mask.sum(dim=1).numpy()

    @property
    def text_tokens(self) -> np.ndarray:
        return self.texts.mask.sum(dim=1).numpy()


@dataclass
class Extraction:
    suite: str
    size: str
    step: int
    token_stats: pa.Table
    pair_kl: pa.Table
    icl_scores: pa.Table | None  # None for masked LMs
    fingerprints: pa.Table | None
    weight_stats: pa.Table | None
    weight_sketches: pa.Table | None
    loglik: pa.Table | None  # None for masked LMs
    blimp_scores: pa.Table | None  # None for masked LMs
    n_params: int
    checkpoints: list[dict]  # seed, source, weights digest, bytes read
    timings_s: dict[str, float]
    forward_dtype: str
    n_tokens: int
    checkpoint_bytes: int = field(default=0)
    objective: str = "causal"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def chunk_rows(n_seeds: int, vocab: int, chunk_bytes: int) -> int:
    """Tokens per chunk so that the chunk's fp32 vocabulary-sized tensors fit in `chunk_bytes`."""
    per_row = (_VOCAB_TENSORS_PER_SEED * n_seeds + _VOCAB_TENSORS_EXTRA) * vocab * 4
    return max(1, chunk_bytes // per_row)


@dataclass
class _SeedResult:
    """Phase 1's output for one seed, on the device."""

    hidden: torch.Tensor  # [N, H] what the output embedding is applied to, forward dtype
    head: Head  # fp32 output embedding
    icl: tuple[np.ndarray, np.ndarray] | None  # surprisal given the short and the long context
    fingerprint: np.ndarray | None  # [P, H] fp32
    loglik: np.ndarray | None  # [texts] log p(text), nats
    blimp: np.ndarray | None  # [2 x pairs] log p(sentence), nats, good and bad interleaved


class Extractor:
    """Extracts partitions of one suite on one evaluation set, keeping skeletons and reading ahead."""

    def __init__(
        self,
        suite: Suite,
        batches: EvalBatches | MaskedEvalBatches,
        unigram_counts: pa.Table,
        icl_sequences: pa.Table | None,
        tokenizer_vocab: int,
        top_k: int,
        windows_per_batch: int,
        icl: IclConfig,
        device: torch.device | None = None,
        dtype: str = "auto",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        prefetch: int = 2,
        compile: bool = False,
        probe_inputs: ProbeInputs | None = None,
    ):
        if int(batches.targets.max()) >= tokenizer_vocab:
            raise EvalSetError("evaluation tokens hold ids outside the tokenizer's vocabulary: rebuild eval_tokens")
        self.suite = suite
        self.objective = suite.objective
        self.masked = isinstance(batches, MaskedEvalBatches)
        if self.masked != (self.objective == "masked"):
            raise EvalSetError(f"suite {suite.name!r} is a {self.objective} LM; its evaluation batches are not")
        self.batches = batches
        self.icl_sequences = icl_sequences
        self.tokenizer_vocab = tokenizer_vocab
        self.top_k = top_k
        self.windows_per_batch = windows_per_batch
        self.icl = icl
        self.device = device or default_device()
        self.dtype = forward_dtype(self.device, dtype)
        self.chunk_bytes = chunk_bytes
        self.prefetch = prefetch
        self.compile = compile
        self._skeletons: dict[str, Skeleton] = {}
        self._unigram_counts = unigram_counts
        self.probe_inputs = probe_inputs
        self._history = WeightHistory(
            lambda size, seed, step: suite.read_weights(suite.checkpoint(size, seed, step)).state_dict
        )

        if self.masked:
            self.positions = batches.positions  # masked copies come in position order
            self._targets = batches.targets
            return
        keep = batches.position.reshape(-1) >= 0
        self._keep = keep
        position = batches.position.reshape(-1)[keep].numpy()
        # Rows go out sorted by position; `_order` maps that order onto the flattened windows.
        self._order = np.argsort(position, kind="stable")
        self.positions = position[self._order].astype(np.int32)
        self._targets = batches.targets.reshape(-1)[keep][torch.from_numpy(self._order)]

    # -- public ---------------------------------------------------------------------------------

    def extract(self, size: str, step: int) -> Extraction:
        """One partition; NonFiniteOutputs if a seed's model gives NaN or infinite outputs."""
        result = next(iter(self.extract_many([(size, step)])))
        if isinstance(result, Quarantine):
            raise NonFiniteOutputs(result.describe())
        return result

    def extract_many(self, partitions: Iterable[tuple[str, int]]) -> Iterator[Extraction | Quarantine]:
        """Extracts each (size, step) in turn; the reader runs ahead across partition boundaries.

        A partition where some seed's model gives NaN or infinite outputs comes out as a
        Quarantine, and the next partition follows as usual."""
        partitions = list(partitions)
        for size, _ in partitions:
            n_seeds = len(self.suite.seeds(size))
            if n_seeds < 2:
                raise ExtractionError(f"{self.suite.name} size {size} has {n_seeds} seed(s); comparing seeds needs two")
        checkpoints = [
            self.suite.checkpoint(size, seed, step) for size, step in partitions for seed in self.suite.seeds(size)
        ]
        reads = iter(Prefetcher(checkpoints, self.suite.read_weights, depth=self.prefetch))
        for size, step in partitions:
            yield self._extract_partition(size, step, reads)

    # -- phase 1: one seed at a time ------------------------------------------------------------

    def _extract_partition(self, size: str, step: int, reads: Iterator[CheckpointWeights]) -> Extraction | Quarantine:
        timings = {
            "read_wait": 0.0,
            "load": 0.0,
            "forward": 0.0,
            "statistics": 0.0,
            "icl": 0.0,
            "read": 0.0,
            "fingerprint": 0.0,
            "loglik": 0.0,
            "blimp": 0.0,
            "weights": 0.0,
        }
        seeds = self.suite.seeds(size)
        results: dict[int, _SeedResult] = {}
        problems: dict[int, str] = {}  # seed -> what its model gives that is not finite
        by_digest: dict[str, int] = {}
        weight_rows, sketches = {}, {}
        provenance, n_bytes, skeleton = [], 0, None
        for seed in seeds:
            checkpoint = self.suite.checkpoint(size, seed, step)
            tick = time.perf_counter()
            weights = next(reads)
            timings["read_wait"] += time.perf_counter() - tick
            timings["read"] += weights.read_s
            assert weights.source == checkpoint.source, "the reader's order must follow the partitions'"
            provenance.append(
                {"seed": seed, "source": checkpoint.source, "weights": weights.digest, "bytes": weights.n_bytes}
            )
            n_bytes += weights.n_bytes
            if self.probe_inputs is not None:
                tick = time.perf_counter()
                weight_rows[seed], sketches[seed] = self._weight_statistics(size, seed, step, weights)
                timings["weights"] += time.perf_counter() - tick
            if weights.digest in by_digest:
                # Identical weights give identical distributions: computed once.
                results[seed] = results[by_digest[weights.digest]]
                continue
            if objective_of(weights.config) != self.objective:
                raise ExtractionError(
                    f"{checkpoint.source}: a {objective_of(weights.config)} LM in suite {self.suite.name!r}, "
                    f"whose models are {self.objective} LMs"
                )
            skeleton = self._skeleton(weights)
            try:
                results[seed] = self._run_seed(skeleton, weights, checkpoint, timings)
            except NonFiniteOutputs as error:
                # The other seeds still run: the quarantine names every seed that is not finite,
                # and the reader's queue stays in step with the partitions.
                problems[seed] = str(error)
                continue
            by_digest[weights.digest] = seed
            del weights
        if problems:
            return Quarantine(self.suite.name, size, step, problems, provenance)
        vocab = self._check_vocabularies(results, size, step)

        token_stats, pair_kl, not_finite = self._statistics(seeds, results, vocab, timings)
        if not_finite:
            n = len(self.positions)
            reasons = {
                seed: f"{self.suite.checkpoint(size, seed, step).source}: NaN or infinite logits at {count} of {n} "
                "evaluation tokens"
                for seed, count in not_finite.items()
            }
            return Quarantine(self.suite.name, size, step, reasons, provenance)
        icl_scores = (
            None
            if self.masked
            else icl_scores_table(self.icl_sequences, self.icl, {seed: results[seed].icl for seed in seeds})
        )
        probes = self.probe_inputs
        causal_probes = probes if not self.masked else None
        return Extraction(
            suite=self.suite.name,
            size=size,
            step=step,
            token_stats=token_stats,
            pair_kl=pair_kl,
            icl_scores=icl_scores,
            fingerprints=fingerprints_table({s: results[s].fingerprint for s in seeds}, probes.probe_tokens)
            if probes
            else None,
            weight_stats=weight_stats_table(weight_rows) if probes else None,
            weight_sketches=weight_sketches_table(sketches) if probes else None,
            loglik=loglik_table({s: results[s].loglik for s in seeds}, probes.text_tokens) if causal_probes else None,
            blimp_scores=blimp_scores_table({s: results[s].blimp for s in seeds})
            if causal_probes and causal_probes.blimp is not None
            else None,
            n_params=sum(p.numel() for p in skeleton.model.parameters()) if skeleton else 0,
            checkpoints=provenance,
            timings_s=timings,
            forward_dtype=str(self.dtype).removeprefix("torch."),
            n_tokens=len(self.positions),
            checkpoint_bytes=n_bytes,
            objective=self.objective,
        )

    def _weight_statistics(
        self, size: str, seed: int, step: int, weights: CheckpointWeights
    ) -> tuple[tuple[int | None, dict], np.ndarray]:
        """(prev_step, per-group statistics) and the count sketch of one seed's checkpoint."""
        steps = self.suite.steps(size)
        prev_step = max((s for s in steps if s < step), default=None)
        state = weights.state_dict
        try:
            previous = self._history.reference(size, seed, prev_step) if prev_step is not None else None
            initial = None
            if step == 0:
                initial = state
            elif 0 in steps:
                initial = self._history.reference(size, seed, 0)
            statistics = weight_statistics(state, previous, initial)
        except WeightMismatch as error:
            raise ExtractionError(f"{weights.source}: {error}") from error
        self._history.remember(size, seed, step, state)
        return (prev_step, statistics), count_sketch(state, self.probe_inputs.sketch_dim)

    def _skeleton(self, weights: CheckpointWeights) -> Skeleton:
        key = architecture_key(weights.config)
        if key not in self._skeletons:
            self._skeletons[key] = Skeleton(
                weights.config, self.device, self.dtype, compile=self.compile, objective=self.objective
            )
        return self._skeletons[key]

    def _run_seed(
        self, skeleton: Skeleton, weights: CheckpointWeights, checkpoint: Checkpoint, timings: dict[str, float]
    ) -> _SeedResult:
        tick = time.perf_counter()
        head = skeleton.load(weights)
        if not head.is_finite():
            raise NonFiniteOutputs(f"{checkpoint.source}: the output embedding holds NaN or infinite weights")
        self._sync()
        timings["load"] += time.perf_counter() - tick

        tick = time.perf_counter()
        with torch.inference_mode():
            hidden = self._masked_hidden(skeleton) if self.masked else self._causal_hidden(skeleton)
            finite = bool(torch.isfinite(hidden).all())
        self._sync()
        timings["forward"] += time.perf_counter() - tick
        if not finite:
            raise NonFiniteOutputs(f"{checkpoint.source}: the model gives NaN or infinite activations")
        result = _SeedResult(hidden=hidden, head=head, icl=None, fingerprint=None, loglik=None, blimp=None)

        if not self.masked:
            tick = time.perf_counter()
            result.icl = seed_surprisals(
                lambda contexts: head.logits(skeleton.hidden_states(contexts)[:, -1]),
                self.icl_sequences,
                self.icl,
                self.device,
            )
            timings["icl"] += time.perf_counter() - tick
            if not all(np.isfinite(surprisals).all() for surprisals in result.icl):
                raise NonFiniteOutputs(f"{checkpoint.source}: the model gives NaN or infinite ICL surprisals")

        if self.probe_inputs is not None:
            self._probe(skeleton, head, result, checkpoint, timings)
        return result

    def _causal_hidden(self, skeleton: Skeleton) -> torch.Tensor:
        """[N, H] in position order: every window once, a prediction at every position."""
        parts = []
        for input_ids, _, _ in self.batches.batches(self.windows_per_batch):
            hidden = skeleton.hidden_states(input_ids.to(self.device))
            parts.append(hidden.reshape(-1, hidden.shape[-1]))
        flat = torch.cat(parts)[self._keep.to(self.device)]
        return flat[torch.from_numpy(self._order).to(self.device)]

    def _masked_hidden(self, skeleton: Skeleton) -> torch.Tensor:
        """[N, H] in position order: each target's masked copy, read at the masked position."""
        parts = []
        for input_ids, attention, columns in self.batches.batches(self.windows_per_batch):
            hidden = skeleton.hidden_states(input_ids.to(self.device), attention.to(self.device))
            at_mask = hidden[torch.arange(len(columns), device=self.device), columns.to(self.device)]
            parts.append(skeleton.head_input(at_mask))
        return torch.cat(parts)

    def _probe(
        self, skeleton: Skeleton, head: Head, result: _SeedResult, checkpoint: Checkpoint, timings: dict[str, float]
    ) -> None:
        """The fingerprint and, for causal LMs, the log-likelihood vector and BLiMP scores."""
        probes = self.probe_inputs
        tick = time.perf_counter()
        # A causal body needs no attention mask: the padding after a probe cannot reach the
        # probe's own positions, so the compiled body runs unmasked and the pooling leaves padding
        # out. A masked LM attends both ways and gets the mask.
        result.fingerprint = fingerprints(
            lambda ids, mask: skeleton.hidden_states(ids, mask if self.masked else None),
            probes.probes,
            probes.batch_probes,
            self.device,
        )
        timings["fingerprint"] += time.perf_counter() - tick
        if self.masked:
            outputs = [result.fingerprint]
        else:

            def logits(ids: torch.Tensor) -> torch.Tensor:
                return head.logits(skeleton.hidden_states(ids))

            tick = time.perf_counter()
            result.loglik = text_logprobs(logits, probes.texts, probes.batch_texts, self.device)
            timings["loglik"] += time.perf_counter() - tick
            outputs = [result.fingerprint, result.loglik]
            if probes.blimp is not None:
                tick = time.perf_counter()
                result.blimp = text_logprobs(logits, probes.blimp, probes.batch_sentences, self.device)
                timings["blimp"] += time.perf_counter() - tick
                outputs.append(result.blimp)
        if not all(np.isfinite(values).all() for values in outputs):
            raise NonFiniteOutputs(
                f"{checkpoint.source}: the model gives NaN or infinite fingerprints, log-likelihoods or BLiMP scores"
            )

    def _check_vocabularies(self, results: dict[int, _SeedResult], size: str, step: int) -> int:
        sizes = {seed: result.head.vocab for seed, result in results.items()}
        if len(set(sizes.values())) != 1:
            raise ExtractionError(
                f"seeds have different vocabulary sizes, so their distributions cannot be compared: {sizes}"
            )
        vocab = next(iter(sizes.values()))
        if vocab < self.tokenizer_vocab:
            source = self.suite.checkpoint(size, next(iter(results)), step).source
            raise ExtractionError(
                f"{source}: the model's vocabulary ({vocab}) is smaller than its tokenizer's ({self.tokenizer_vocab})"
            )
        return vocab

    # -- phase 2: all seeds, one chunk of tokens at a time --------------------------------------

    def _statistics(
        self, seeds: list[int], results: dict[int, _SeedResult], vocab: int, timings: dict[str, float]
    ) -> tuple[pa.Table, pa.Table, dict[int, int]]:
        """(token_stats, pair_kl, {seed: tokens whose logits hold a NaN or an infinity})."""
        n, k, n_seeds = len(self.positions), self.top_k, len(seeds)
        not_finite = torch.zeros(n_seeds, dtype=torch.int64, device=self.device)
        scalars = {name: np.empty((n_seeds, n), dtype=np.float32) for name in SCALAR_STATISTICS}
        topk_ids = np.empty((n_seeds, n, k), dtype=np.int32)
        topk_logprobs = np.empty((n_seeds, n, k), dtype=np.float32)
        kl = np.empty((n_seeds, n_seeds, n), dtype=np.float32)
        unigram_logp = self._unigram_log_probs(vocab)
        targets = self._targets.to(self.device)
        rows = chunk_rows(n_seeds, vocab, self.chunk_bytes)
        with torch.inference_mode():
            for start in range(0, n, rows):
                stop = min(start + rows, n)
                tick = time.perf_counter()
                # The unembedding in fp32: hidden states [C, H] times the fp32 output embedding.
                logits = torch.stack([results[s].head.logits(results[s].hidden[start:stop]) for s in seeds])
                # Finite hidden states and weights can still overflow in the unembedding. A row's
                # sum is NaN or infinite exactly when one of its logits is (or when the sum itself
                # overflows, past 3e38: no working model's logits come near), and costs one
                # reduction instead of a vocabulary-sized mask.
                not_finite += (~torch.isfinite(logits.sum(dim=-1))).sum(dim=-1)
                self._sync()
                timings["forward"] += time.perf_counter() - tick

                tick = time.perf_counter()
                for index in range(n_seeds):
                    stats = token_statistics(log_probs(logits[index]), targets[start:stop], unigram_logp, k)
                    for name in SCALAR_STATISTICS:
                        scalars[name][index, start:stop] = getattr(stats, name).cpu().numpy()
                    topk_ids[index, start:stop] = stats.topk_ids.cpu().numpy()
                    topk_logprobs[index, start:stop] = stats.topk_logprobs.cpu().numpy()
                kl[:, :, start:stop] = pairwise_kl(logits).cpu().numpy()
                timings["statistics"] += time.perf_counter() - tick
                del logits
        return (
            _token_stats_table(np.array(seeds), self.positions, scalars, topk_ids, topk_logprobs),
            _pair_kl_table(np.array(seeds), self.positions, kl),
            {seed: int(count) for seed, count in zip(seeds, not_finite.tolist(), strict=True) if count},
        )

    def _unigram_log_probs(self, vocab: int) -> torch.Tensor:
        counts = torch.zeros(vocab, dtype=torch.float64)
        ids = self._unigram_counts.column("token_id").to_numpy().astype(np.int64)
        values = self._unigram_counts.column("count").to_numpy().astype(np.float64)
        counts[torch.from_numpy(ids)] = torch.from_numpy(values)
        return unigram_log_probs(counts).to(self.device)

    def _sync(self) -> None:
        # Phase timings need the device's queue drained; CPU work is synchronous already.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def extract_partition(
    suite: Suite,
    size: str,
    step: int,
    batches: EvalBatches,
    unigram_counts: pa.Table,
    icl_sequences: pa.Table,
    tokenizer_vocab: int,
    top_k: int,
    windows_per_batch: int,
    icl: IclConfig,
    device: torch.device | None = None,
    dtype: str = "auto",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Extraction:
    """One partition; `Extractor.extract_many` runs several with shared skeletons and read-ahead."""
    extractor = Extractor(
        suite,
        batches,
        unigram_counts,
        icl_sequences,
        tokenizer_vocab,
        top_k,
        windows_per_batch,
        icl,
        device=device,
        dtype=dtype,
        chunk_bytes=chunk_bytes,
    )
    return extractor.extract(size, step)


def _fixed_lists(values: np.ndarray, value_type: pa.DataType) -> pa.Array:
    n, k = values.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), type=value_type))


def _token_stats_table(
    seeds: np.ndarray,
    positions: np.ndarray,
    scalars: dict[str, np.ndarray],
    topk_ids: np.ndarray,
    topk_logprobs: np.ndarray,
) -> pa.Table:
    """Rows ordered by (seed, position): the arrays are seed-major with positions ascending."""
    n_seeds, n = len(seeds), len(positions)
    k = topk_ids.shape[-1]
    columns = {
        "seed": np.repeat(seeds.astype(np.int32), n),
        "position": np.tile(positions, n_seeds),
        **{name: values.reshape(-1) for name, values in scalars.items()},
        "topk_ids": _fixed_lists(topk_ids.reshape(-1, k), pa.int32()),
        "topk_logprobs": _fixed_lists(topk_logprobs.reshape(-1, k), pa.float32()),
    }
    return pa.table({f.name: columns[f.name] for f in TOKEN_STATS_SCHEMA}, schema=TOKEN_STATS_SCHEMA)


def _pair_kl_table(seeds: np.ndarray, positions: np.ndarray, kl: np.ndarray) -> pa.Table:
    """Rows ordered by (seed_a, seed_b, position), every ordered pair a != b."""
    n_seeds, n = len(seeds), len(positions)
    a, b = np.nonzero(~np.eye(n_seeds, dtype=bool))  # row-major: ordered by (a, b)
    return pa.table(
        {
            "seed_a": np.repeat(seeds[a].astype(np.int32), n),
            "seed_b": np.repeat(seeds[b].astype(np.int32), n),
            "position": np.tile(positions, len(a)),
            "kl": kl[a, b].reshape(-1),
        },
        schema=PAIR_KL_SCHEMA,
    )
