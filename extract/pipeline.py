"""The pipeline's steps as plain functions over Settings; Dagster assets call these.

Each step reads what the step before it wrote (the corpus cache, the suite folders, the lake)
and writes its own output atomically, so any step can be rerun alone.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from extract.blimp import blimp_pairs_table, blimp_sentence_batch, blimp_set_hash, load_blimp, select_pairs
from extract.config import REPO_ROOT, Settings
from extract.corpus import Document, ensure_brown, load_documents, split_documents
from extract.evalset import (
    EvalSetError,
    build_eval_tokens,
    eval_batches,
    eval_documents_table,
    eval_set_hash,
    masked_eval_batches,
    unigram_counts,
)
from extract.extraction import Extraction, Extractor, NonFiniteOutputs, ProbeInputs, Quarantine, default_device
from extract.features import token_pos_table
from extract.fingerprints import probe_batch, probe_set, probes_table, table_hash
from extract.icl import icl_sequences_table
from extract.lake import checkpoint_dir, suite_table_path, write_partition, write_quarantine, write_table_atomically
from extract.loglik import loglik_texts_table, text_batch
from extract.minisuite import encode_corpus, train_suite
from extract.suites import Suite, open_suite
from extract.tagger import install_perceptron_tagger

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


def build_eval_set(settings: Settings, suite_name: str) -> dict:
    """Writes the suite's eval_tokens and unigram counts (and the shared eval_documents)."""
    suite = open_suite(settings.suite(suite_name))
    tokenizer = suite.load_tokenizer()
    train, heldout = corpus_split(settings)
    lake = settings.paths.lake

    write_table_atomically(eval_documents_table(EVAL_SET, heldout), lake / "eval_documents" / "eval_documents.parquet")
    window = settings.eval.masked_window if suite.objective == "masked" else settings.eval.window
    tokens = build_eval_tokens(EVAL_SET, heldout, tokenizer, settings.eval.n_tokens, window)
    write_table_atomically(tokens, suite_table_path(lake, "eval_tokens", suite_name))
    # The unigram reference is the training split, as seen through this suite's tokenizer.
    counts = unigram_counts(encode_corpus(tokenizer, [d.text for d in train]))
    write_table_atomically(counts, suite_table_path(lake, "unigram", suite_name))
    icl = settings.icl
    sequences = icl_sequences_table(heldout, tokenizer, icl.target_position, icl.max_sequences)
    write_table_atomically(sequences, suite_table_path(lake, "icl_sequences", suite_name))
    probes = probes_table(probe_set(settings.fingerprint, heldout), tokenizer, settings.fingerprint.max_tokens)
    write_table_atomically(probes, suite_table_path(lake, "fingerprint_probes", suite_name))
    texts = loglik_texts_table(heldout, tokenizer, settings.loglik)
    write_table_atomically(texts, suite_table_path(lake, "loglik_texts", suite_name))
    blimp = {}
    if suite.objective == "causal":  # masked LMs give no left-to-right probability of a sentence
        pairs = blimp_pairs_table(select_pairs(load_blimp(settings.blimp), settings.blimp), tokenizer)
        write_table_atomically(pairs, suite_table_path(lake, "blimp_pairs", suite_name))
        blimp = {"blimp_pairs": pairs.num_rows, "blimp_paradigms": len(set(pairs.column("uid").to_pylist()))}
    return {
        "objective": suite.objective,
        "eval_set_hash": eval_set_hash(tokens),
        "n_tokens": tokens.num_rows,
        "n_documents": len({d for d in tokens.column("doc_id").to_pylist()}),
        "n_windows": len(set(tokens.column("window_id").to_pylist())),
        "unigram_tokens": int(sum(counts.column("count").to_pylist())),
        "icl_sequences": sequences.num_rows,
        "fingerprint_probes": probes.num_rows,
        "loglik_texts": texts.num_rows,
        "loglik_bytes": int(sum(texts.column("n_bytes").to_pylist())),
        **blimp,
    }


def extract_checkpoints(
    settings: Settings,
    suite_name: str,
    partitions: list[tuple[str, int]],
    device: torch.device | None = None,
    output_lake: Path | None = None,
) -> Iterator[dict]:
    """Extracts and writes each (size, step) of the suite in turn; yields each partition's manifest.

    One extractor serves every partition, so model skeletons are built once per architecture and
    checkpoints are read ahead across partition boundaries. Each partition is written on a
    background thread while the next one computes. Partitions go to the settings' lake, or to
    `output_lake` (the benchmark's, which must not touch the warehouse).

    A partition where some seed's model gives NaN or infinite outputs is not written: its
    quarantine record is, and is yielded in place of the manifest (it has `quarantined`, the
    reason by seed). The partitions after it go on.
    """
    suite: Suite = open_suite(settings.suite(suite_name))
    lake = settings.paths.lake
    tokens = pq.read_table(suite_table_path(lake, "eval_tokens", suite_name))
    counts = pq.read_table(suite_table_path(lake, "unigram", suite_name))
    sequences_path = suite_table_path(lake, "icl_sequences", suite_name)
    if not sequences_path.exists():
        raise EvalSetError(f"{sequences_path} is missing: rebuild the eval set of suite {suite_name!r}")
    tokenizer = suite.load_tokenizer()
    masked = suite.objective == "masked"
    if masked:
        batches = masked_eval_batches(
            tokens, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id, tokenizer.pad_token_id
        )
        bos = tokenizer.cls_token_id
    else:
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        batches = eval_batches(tokens, bos)
    probe_inputs, probe_identity = load_probe_inputs(settings, suite_name, tokenizer, bos, blimp=not masked)
    extractor = Extractor(
        suite,
        batches,
        counts,
        None if masked else pq.read_table(sequences_path),
        tokenizer_vocab=len(tokenizer),
        top_k=settings.eval.top_k,
        windows_per_batch=settings.eval.batch_masked if masked else settings.eval.batch_windows,
        icl=settings.icl,
        device=device or default_device(),
        dtype=settings.extraction.dtype,
        chunk_bytes=settings.extraction.chunk_bytes,
        prefetch=settings.extraction.prefetch,
        compile=settings.extraction.compile,
        probe_inputs=probe_inputs,
    )
    identity = {
        "objective": suite.objective,
        "eval_set": EVAL_SET,
        "eval_set_hash": eval_set_hash(tokens),
        **probe_identity,
        "code_version": code_version(),
    }

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="partition-writer") as writer:
        pending = None
        started = time.perf_counter()
        for result in extractor.extract_many(partitions):
            if isinstance(result, Quarantine):
                if pending is not None:  # in partition order
                    yield pending.result()
                    pending = None
                record = _quarantine_record(result, identity)
                write_quarantine(output_lake or lake, record)
                yield record
                started = time.perf_counter()
                continue
            manifest = _manifest(settings, suite, result, identity, str(extractor.device))
            manifest["timings_s"]["compute"] = time.perf_counter() - started
            if pending is not None:
                yield pending.result()
            out = output_lake or lake
            target = checkpoint_dir(out, suite_name, result.size, result.step)
            tables = {name: table for name, table in _tables(result).items() if table is not None}
            pending = writer.submit(write_partition, out, target, tables, manifest)
            started = time.perf_counter()
        if pending is not None:
            yield pending.result()


def load_probe_inputs(
    settings: Settings, suite_name: str, tokenizer, bos: int, blimp: bool = True
) -> tuple[ProbeInputs, dict]:
    """The suite's fingerprint probes, log-likelihood texts and (causal suites) BLiMP sentences as
    model inputs, and their identities."""
    tables = {}
    for table in ("fingerprint_probes", "loglik_texts", *(["blimp_pairs"] if blimp else [])):
        path = suite_table_path(settings.paths.lake, table, suite_name)
        if not path.exists():
            raise EvalSetError(f"{path} is missing: rebuild the eval set of suite {suite_name!r}")
        tables[table] = pq.read_table(path)
    # The end-of-text token BLiMP scores after each sentence when blimp.append_eos is set.
    eos = (tokenizer.eos_token_id if tokenizer.eos_token_id is not None else bos) if settings.blimp.append_eos else None
    inputs = ProbeInputs(
        probes=probe_batch(tables["fingerprint_probes"], tokenizer),
        texts=text_batch(tables["loglik_texts"], tokenizer, bos),
        batch_probes=settings.fingerprint.batch_probes,
        batch_texts=settings.loglik.batch_texts,
        sketch_dim=settings.weights.sketch_dim,
        blimp=blimp_sentence_batch(tables["blimp_pairs"], tokenizer, bos, eos) if blimp else None,
        batch_sentences=settings.blimp.batch_sentences,
    )
    identity = {
        "probe_set_hash": table_hash(tables["fingerprint_probes"]),
        "loglik_set_hash": table_hash(tables["loglik_texts"]),
        "weight_sketch_dim": settings.weights.sketch_dim,
    }
    if blimp:
        identity["blimp_set_hash"] = blimp_set_hash(tables["blimp_pairs"], settings.blimp.append_eos)
    return inputs, identity


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
        "seeds": suite.seeds(result.size),
        "checkpoints": result.checkpoints,
        **identity,
        "top_k": settings.eval.top_k,
        "n_tokens": result.n_tokens,
        "device": device,
        "forward_dtype": result.forward_dtype,
        "checkpoint_bytes": result.checkpoint_bytes,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": {name: table.num_rows for name, table in _tables(result).items() if table is not None},
        "timings_s": dict(result.timings_s),
    }


def _tables(result: Extraction) -> dict[str, pa.Table | None]:
    """A partition's lake tables by file name."""
    return {
        "token_stats": result.token_stats,
        "pair_kl": result.pair_kl,
        "icl_scores": result.icl_scores,
        "fingerprints": result.fingerprints,
        "weight_stats": result.weight_stats,
        "weight_sketches": result.weight_sketches,
        "loglik": result.loglik,
        "blimp_scores": result.blimp_scores,
    }


def build_token_pos(settings: Settings, suite_name: str) -> dict:
    """Writes the suite's token_pos: the Penn tag of each eval token's word, and its predecessor's."""
    lake = settings.paths.lake
    tokens = pq.read_table(suite_table_path(lake, "eval_tokens", suite_name))
    eval_sets = set(tokens.column("eval_set").to_pylist())
    documents = {
        row["doc_id"]: row["text"]
        for row in pq.read_table(lake / "eval_documents" / "eval_documents.parquet").to_pylist()
        if row["eval_set"] in eval_sets
    }
    table = token_pos_table(tokens, documents, settings.paths.nltk_data)
    write_table_atomically(table, suite_table_path(lake, "token_pos", suite_name))
    tags = [tag for tag in table.column("pos").to_pylist() if tag is not None]
    return {
        "n_tokens": table.num_rows,
        "n_tagged": len(tags),
        "share_tagged": len(tags) / table.num_rows if table.num_rows else 0.0,
        "n_tags": len(set(tags)),
    }
