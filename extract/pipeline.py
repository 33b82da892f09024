"""The pipeline's steps as plain functions over Settings; Dagster assets call these.

Each step reads what the step before it wrote (the corpus cache, the suite folders, the lake)
and writes its own output atomically, so any step can be rerun alone.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from extract.config import REPO_ROOT, Settings
from extract.engine.extractor import Extraction, Extractor, NonFiniteOutputs, Quarantine, default_device
from extract.inputs.brown_corpus import Document, ensure_brown, load_documents, split_documents
from extract.inputs.eval_tokens import (
    EVAL_DOCUMENTS,
    EVAL_TOKENS,
    TOKEN_FREQUENCY,
    UNIGRAM,
    build_eval_tokens,
    eval_batches,
    eval_documents_table,
    eval_set_hash,
    masked_eval_batches,
    read_counts,
    table_hash,
    unigram_counts,
)
from extract.inputs.penn_tagger import install_perceptron_tagger
from extract.inputs.text_corpus import BROWN, BROWN_TRAIN, CorpusSource, documents_hash, read_documents, sample_order
from extract.inputs.token_tags import TOKEN_POS, token_pos_table
from extract.inputs.vocabulary import VOCABULARY, vocabulary_table
from extract.lake.partition_store import (
    read_manifest,
    stored_sources,
    write_partition,
    write_quarantine,
    write_table_atomically,
)
from extract.lake.tables import checkpoint_dir
from extract.measures import MEASURES
from extract.measures.base import Measure, SuiteContext, read_suite_table
from extract.registry import TABLES
from extract.sources.mini_trainer import encode_corpus, train_suite
from extract.sources.suites import Suite, open_suite

EVAL_SET = "brown-heldout"


def code_version() -> str:
    """The git commit the code runs from, marked dirty when it has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def corpus_documents(settings: Settings) -> list[Document]:
    """Brown's documents as text, fetched if needed; kept as Parquet since NLTK's reader is slow."""
    cache = settings.paths.cache / "brown_documents.parquet"
    if not cache.exists():
        documents = load_documents(ensure_brown(settings.paths.cache))
        write_table_atomically(pa.Table.from_pylist([asdict(d) for d in documents]), cache)
    return [Document(**row) for row in pq.read_table(cache).to_pylist()]


def corpus_split(settings: Settings) -> tuple[list[Document], list[Document]]:
    """(training documents, held-out documents) of the Brown corpus."""
    return split_documents(corpus_documents(settings), settings.eval.heldout_every)


def install_tagger(settings: Settings) -> Path:
    return install_perceptron_tagger(settings.paths.nltk_data)


def train_mini_suite(settings: Settings, log=print) -> Path:
    """The causal mini suite (the one most tests use)."""
    train, _ = corpus_split(settings)
    return train_suite(settings.mini, [d.text for d in train], settings.paths.suites / settings.mini.name, log=log)


def train_mini_suites(settings: Settings, log=print) -> list[Path]:
    """Every enabled self-trained suite: the causal one and the masked one."""
    train, _ = corpus_split(settings)
    texts = [d.text for d in train]
    return [train_suite(mini, texts, settings.paths.suites / mini.name, log=log) for mini in settings.mini_suites]


def suite_measures(objective: str) -> list[type[Measure]]:
    """The measures whose tables a suite of this objective has, in the order they run."""
    return [measure for measure in MEASURES if measure.applies_to(objective)]


def eval_corpus(settings: Settings, suite_name: str) -> tuple[str, list[Document]]:
    """(eval set name, documents in the order they are taken) of the suite's evaluation corpus."""
    config = settings.eval_for(suite_name)
    if config.corpus == BROWN:
        name, documents = EVAL_SET, corpus_split(settings)[1]
    else:
        documents = read_documents(CorpusSource(config.corpus, config.text_column, config.split, config.subset))
        # The name says which texts: two suites on the same corpus share its documents' rows.
        name = f"{CorpusSource(config.corpus).label()}-{documents_hash(documents)[7:15]}"
    return name, sample_order(documents, config.sample_seed)


def counted(settings: Settings, suite_name: str, source: str, tokenizer) -> pa.Table:
    """Token counts of a reference corpus through the suite's tokenizer: Brown's training split
    ("train", what the mini suites train on), a configured corpus, or a Parquet of token_id, count."""
    config = settings.eval_for(suite_name)
    if source == BROWN_TRAIN:
        texts = [d.text for d in corpus_split(settings)[0]]
    elif (counts := read_counts(source, vocab_size=len(tokenizer))) is not None:
        return counts
    else:
        texts = [d.text for d in read_documents(CorpusSource(source, config.text_column, config.split, config.subset))]
    return unigram_counts(encode_corpus(tokenizer, texts))


def token_frequency(settings: Settings, suite_name: str, tokenizer, tokens: pa.Table, unigram: pa.Table) -> pa.Table:
    """What the frequency bins count (eval.frequency): the evaluation tokens, the unigram
    reference's counts, or another corpus."""
    source = settings.eval_for(suite_name).frequency
    if source == "eval":
        return unigram_counts(tokens.column("token_id").to_numpy())
    if source == "unigram":
        return unigram
    return counted(settings, suite_name, source, tokenizer)


def build_eval_set(settings: Settings, suite_name: str) -> dict:
    """Writes the suite's eval_tokens, its unigram and frequency counts, its tokenizer's vocabulary
    and each of its measures' inputs (and its documents' rows of eval_documents); returns what the
    Dagster asset shows of them. Everything is built before anything is written, so a bad corpus or counts file leaves
    the suite's stored tables as they were."""
    suite = open_suite(settings.suite(suite_name))
    config = settings.eval_for(suite_name)
    tokenizer = suite.load_tokenizer()
    eval_set, documents = eval_corpus(settings, suite_name)
    lake = settings.paths.lake

    if suite.objective == "masked":  # each target has its own masked copy of its window: no overlap
        tokens = build_eval_tokens(eval_set, documents, tokenizer, config.n_tokens, config.masked_window)
    else:
        tokens = build_eval_tokens(eval_set, documents, tokenizer, config.n_tokens, config.window, config.stride)
    counts = counted(settings, suite_name, config.unigram, tokenizer)
    tables = {
        EVAL_TOKENS.name: tokens,
        UNIGRAM.name: counts,
        TOKEN_FREQUENCY.name: token_frequency(settings, suite_name, tokenizer, tokens, counts),
        VOCABULARY.name: vocabulary_table(tokenizer),
    }
    for measure in suite_measures(suite.objective):
        tables.update(measure.build_inputs(settings, tokenizer, documents))

    used = set(tokens.column("doc_id").to_pylist())
    write_eval_documents(lake, eval_documents_table(eval_set, [d for d in documents if d.doc_id in used]))
    for name, table in tables.items():
        write_table_atomically(table, TABLES[name].path(lake, suite_name))
    return {
        "objective": suite.objective,
        "eval_corpus": config.corpus,
        "eval_set": eval_set,
        "eval_set_hash": eval_set_hash(tokens),
        "n_tokens": tokens.num_rows,
        "n_documents": len(used),
        "n_windows": len(set(tokens.column("window_id").to_pylist())),
        "unigram": config.unigram,
        "unigram_tokens": int(sum(counts.column("count").to_pylist())),
        "frequency": config.frequency,
        **{name: table.num_rows for name, table in tables.items() if name not in (EVAL_TOKENS.name, UNIGRAM.name)},
    }


def write_eval_documents(lake: Path, documents: pa.Table) -> None:
    """Replaces this eval set's rows of the lake's eval_documents, keeping every other eval set's.

    Suites are prepared one after another (one Dagster asset), so there is no concurrent writer."""
    path = EVAL_DOCUMENTS.path(lake)
    (eval_set,) = set(documents.column("eval_set").to_pylist())
    if path.exists():
        kept = pq.read_table(path).filter(pc.field("eval_set") != eval_set)
        documents = pa.concat_tables([kept.cast(documents.schema), documents])
    write_table_atomically(documents, path)


def build_extractor(
    settings: Settings,
    suite: Suite,
    device: torch.device | None = None,
    measures: list[type[Measure]] | None = None,
) -> tuple[Extractor, dict]:
    """The extractor of `suite` with its inputs read from the lake, and their identities (for the
    manifest). Every measure the suite's objective has runs, or only `measures`."""
    tokenizer = suite.load_tokenizer()
    tokens = read_suite_table(settings.paths.lake, EVAL_TOKENS, suite.name)
    if suite.objective == "masked":
        ids = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id, tokenizer.pad_token_id
        batches = masked_eval_batches(tokens, *ids)
        bos = tokenizer.cls_token_id
    else:
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        batches = eval_batches(tokens, bos)
    unigram = read_suite_table(settings.paths.lake, UNIGRAM, suite.name)
    config = settings.eval_for(suite.name)
    context = SuiteContext(settings, suite, tokenizer, bos)
    chosen = suite_measures(suite.objective) if measures is None else measures
    built = [measure.for_suite(context) for measure in chosen]
    extractor = Extractor(
        suite,
        batches,
        unigram,
        built,
        tokenizer_vocab=len(tokenizer),
        eval=config,
        extraction=settings.extraction,
        device=device or default_device(),
    )
    identity = {
        "objective": suite.objective,
        "eval_corpus": config.corpus,
        "eval_set": tokens.column("eval_set")[0].as_py(),
        "eval_set_hash": eval_set_hash(tokens),
        "unigram": config.unigram,
        "unigram_hash": table_hash(unigram),
        "frequency": config.frequency,
        "frequency_hash": table_hash(read_suite_table(settings.paths.lake, TOKEN_FREQUENCY, suite.name)),
    }
    for measure in built:
        identity.update(measure.identity())
    return extractor, identity


def extract_checkpoints(
    settings: Settings,
    suite_name: str,
    partitions: list[tuple[str, int]],
    device: torch.device | None = None,
    output_lake: Path | None = None,
    run_id: str | None = None,
) -> Iterator[dict]:
    """Extracts and writes each (size, step) of the suite in turn; yields each partition's manifest.

    One extractor serves every partition, so model skeletons are built once per architecture and
    checkpoints are read ahead across partition boundaries. Each partition is written on a
    background thread while the next one computes. Partitions go to the settings' lake, or to
    `output_lake` (the benchmark's, which must not touch the warehouse). `run_id` names the
    orchestrator's run in each manifest (`extraction_run`; see `committed_by_run`).

    A partition where some seed's model gives NaN or infinite outputs is not written: its
    quarantine record is, and is yielded in place of the manifest (it has `quarantined`, the
    reason by seed). The partitions after it go on.

    A partition is extracted with the seeds that have its step; the manifest names the others
    (`seeds_missing`, `missing_checkpoints`). Once a partition is committed, a hub suite with a
    cache budget deletes cached revisions of partitions the lake holds, never one of the
    partitions still to come in this run (`Suite.trim_cache`).
    """
    suite: Suite = open_suite(settings.suite(suite_name))
    extractor, identity = build_extractor(settings, suite, device)
    identity["code_version"] = code_version()
    identity["extraction_run"] = run_id
    out = output_lake or settings.paths.lake
    partitions = list(partitions)

    def commit(index: int, target: Path, tables: dict, manifest: dict) -> dict:
        written = write_partition(out, target, tables, manifest)
        to_come = {
            suite.checkpoint(size, seed, step).source
            for size, step in partitions[index + 1 :]
            for seed in suite.seeds(size)
        }
        suite.trim_cache(stored_sources(out, suite_name), to_come)
        return written

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="partition-writer") as writer:
        pending = None
        started = time.perf_counter()
        for index, result in enumerate(extractor.extract_many(partitions)):
            if isinstance(result, Quarantine):
                if pending is not None:  # in partition order
                    yield pending.result()
                    pending = None
                record = _quarantine_record(result, identity)
                write_quarantine(out, record)
                yield record
                started = time.perf_counter()
                continue
            manifest = _manifest(settings, suite, result, identity, str(extractor.device))
            manifest["timings_s"]["compute"] = time.perf_counter() - started
            if pending is not None:
                yield pending.result()
            target = checkpoint_dir(out, suite_name, result.size, result.step)
            pending = writer.submit(commit, index, target, result.tables, manifest)
            started = time.perf_counter()
        if pending is not None:
            yield pending.result()


def committed_by_run(lake: Path, suite: str, partitions: list[tuple[str, int]], run_id: str) -> set[tuple[str, int]]:
    """The (size, step) of `partitions` whose stored copy the run `run_id` committed: what a retry
    of that run, after a worker died mid-range, need not extract again."""
    return {
        (size, step)
        for size, step in partitions
        if (read_manifest(checkpoint_dir(lake, suite, size, step)) or {}).get("extraction_run") == run_id
    }


def extract_checkpoint(
    settings: Settings, suite_name: str, size: str, step: int, device: torch.device | None = None
) -> dict:
    """Runs every seed of (suite, size, step) and writes the partition; returns its manifest.

    NonFiniteOutputs, naming the seeds, if the partition is quarantined instead."""
    (manifest,) = extract_checkpoints(settings, suite_name, [(size, step)], device)
    if "quarantined" in manifest:
        raise NonFiniteOutputs(manifest["reason"])
    return manifest


def _quarantine_record(quarantine: Quarantine, identity: dict) -> dict:
    return {
        "suite": quarantine.suite,
        "size": quarantine.size,
        "step": quarantine.step,
        "quarantined": {str(seed): reason for seed, reason in sorted(quarantine.reasons.items())},
        "reason": quarantine.describe(),
        "checkpoints": quarantine.checkpoints,
        "code_version": identity["code_version"],
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _manifest(settings: Settings, suite: Suite, result: Extraction, identity: dict, device: str) -> dict:
    return {
        "suite": suite.name,
        "size": result.size,
        "step": result.step,
        "n_params": result.n_params,
        # the seeds compared; those of the suite without a checkpoint at this step, and why
        "seeds": result.seeds,
        "n_pairs": result.n_pairs,
        # KLs of (ordered pair, token) that the fast path would have lost digits on, recomputed
        # pair by pair (extract/measures/token_distributions.py, pair_divergences)
        "pair_kl_exact": result.exact_pair_kl,
        "seeds_missing": sorted(result.missing),
        # the step this size trains to: final surprisal waits for it (None: the suite does not say)
        "final_step": suite.final_step(result.size),
        "missing_checkpoints": [
            {"seed": seed, "source": suite.checkpoint(result.size, seed, result.step).source, "reason": reason}
            for seed, reason in sorted(result.missing.items())
        ],
        "checkpoints": result.checkpoints,
        **identity,
        "top_k": settings.eval_for(suite.name).top_k,
        "n_tokens": result.n_tokens,
        "device": device,
        "host": socket.gethostname(),
        "forward_dtype": result.forward_dtype,
        "checkpoint_bytes": result.checkpoint_bytes,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": {name: table.num_rows for name, table in result.tables.items()},
        "timings_s": dict(result.timings_s),
    }


def build_token_pos(settings: Settings, suite_name: str) -> dict:
    """Writes the suite's token_pos: the Penn tag of each eval token's word, and its predecessor's."""
    lake = settings.paths.lake
    tokens = read_suite_table(lake, EVAL_TOKENS, suite_name)
    eval_sets = set(tokens.column("eval_set").to_pylist())
    documents = {
        row["doc_id"]: row["text"]
        for row in pq.read_table(EVAL_DOCUMENTS.path(lake)).to_pylist()
        if row["eval_set"] in eval_sets
    }
    table = token_pos_table(tokens, documents, settings.paths.nltk_data)
    write_table_atomically(table, TOKEN_POS.path(lake, suite_name))
    tags = [tag for tag in table.column("pos").to_pylist() if tag is not None]
    return {
        "n_tokens": table.num_rows,
        "n_tagged": len(tags),
        "share_tagged": len(tags) / table.num_rows if table.num_rows else 0.0,
        "n_tags": len(set(tags)),
    }
