"""The activation fingerprints' probes (McEntire 2026): a fixed list of distinct short texts.

Openings of held-out Brown paragraphs, arithmetic, statements of fact and random strings by
default, or the lines of a file. Each probe is fed bare (no BOS, as a Hugging Face tokenizer of
Pythia or GPT-2 encodes it) and cut to `max_tokens` tokens.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from transformers import PreTrainedTokenizerBase

from extract.config import ConfigError, FingerprintConfig
from extract.inputs.brown_corpus import Document
from extract.lake.tables import SUITE, LakeTable

FINGERPRINT_PROBES_SCHEMA = pa.schema(
    [("probe_id", pa.int32()), ("kind", pa.string()), ("text", pa.string()), ("n_tokens", pa.int32())]
)


# Short statements of fact in plain words; the first `factual_probes` are used.
FACTS = (
    "Paris is the capital of France.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The Earth moves around the Sun once a year.",
    "A week has seven days.",
    "The Pacific is the largest ocean on Earth.",
    "Ice is frozen water.",
    "The Moon moves around the Earth.",
    "A triangle has three sides.",
    "Rome is the capital of Italy.",
    "Spiders have eight legs.",
    "The Nile is a river in Africa.",
    "There are twelve months in a year.",
    "Gold is a metal.",
    "The heart pumps blood through the body.",
    "London is on the river Thames.",
    "A square has four equal sides.",
    "Plants need light to grow.",
    "The Sun rises in the east.",
    "Mount Everest is the highest mountain on Earth.",
    "Whales are mammals that live in the sea.",
    "Madrid is the capital of Spain.",
    "A century is one hundred years.",
    "Bees make honey.",
    "The Atlantic lies between Europe and America.",
    "An hour has sixty minutes.",
    "Salt dissolves in water.",
    "Berlin is the capital of Germany.",
    "A spider spins a web.",
    "Iron rusts in wet air.",
    "Tokyo is the capital of Japan.",
    "Snow falls when the air is cold.",
    "A dozen is twelve.",
)


class ProbeSetError(ConfigError):
    """The probe set cannot be built; the message says why."""


@dataclass(frozen=True)
class Probe:
    kind: str  # corpus, arithmetic, factual, random, or file
    text: str


def default_probes(config: FingerprintConfig, heldout: Sequence[Document]) -> list[Probe]:
    """The generated probe set: corpus, arithmetic, factual and random probes, all distinct.

    Deterministic: the same settings and held-out documents give the same probes in the same order.
    """
    rng = random.Random(20260101)
    paragraphs = [p.strip() for d in heldout for p in d.text.split("\n\n") if len(p.strip()) >= 20]
    if config.corpus_probes > len(paragraphs):
        raise ProbeSetError(
            f"fingerprint.corpus_probes is {config.corpus_probes} but the held-out documents have "
            f"{len(paragraphs)} paragraphs"
        )
    # Spread over the held-out documents rather than the first few.
    picks = [paragraphs[i * len(paragraphs) // config.corpus_probes] for i in range(config.corpus_probes)]
    if config.factual_probes > len(FACTS):
        raise ProbeSetError(f"fingerprint.factual_probes is at most {len(FACTS)}, got {config.factual_probes}")

    def arithmetic() -> str:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice("+-*")
        return f"{a} {op} {b} = {a + b if op == '+' else a - b if op == '-' else a * b}"

    def random_string() -> str:
        alphabet = string.ascii_letters + string.digits + " .,;:!?-"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(12, 40))).strip()

    probes: list[Probe] = []
    seen: set[str] = set()

    def add(kind: str, texts) -> None:
        for text in texts:
            if text and text not in seen:
                seen.add(text)
                probes.append(Probe(kind, text))

    add("corpus", picks)
    for kind, make, n in (
        ("arithmetic", arithmetic, config.arithmetic_probes),
        ("random", random_string, config.random_probes),
    ):
        target = len(probes) + n
        while len(probes) < target:  # drawn until n distinct ones
            add(kind, [make()])
    add("factual", FACTS[: config.factual_probes])
    if len(probes) != config.n_generated:
        raise ProbeSetError(f"the held-out paragraphs repeat: {config.n_generated - len(probes)} probes are duplicates")
    return probes


def file_probes(path: Path) -> list[Probe]:
    """One probe per non-empty line of a UTF-8 text file; a repeated line is an error."""
    if not path.is_file():
        raise ProbeSetError(f"fingerprint.probes_file {path} does not exist")
    probes, seen = [], {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        if text in seen:
            raise ProbeSetError(f"{path}: line {number} repeats the probe of line {seen[text]}: {text!r}")
        seen[text] = number
        probes.append(Probe("file", text))
    if not probes:
        raise ProbeSetError(f"fingerprint.probes_file {path} holds no probes")
    return probes


def probe_set(config: FingerprintConfig, heldout: Sequence[Document]) -> list[Probe]:
    return file_probes(config.probes_file) if config.probes_file else default_probes(config, heldout)


def probes_table(probes: Sequence[Probe], tokenizer: PreTrainedTokenizerBase, max_tokens: int) -> pa.Table:
    """The suite's probes as fed to its models: each cut to its first `max_tokens` tokens."""
    texts, counts = [], []
    for probe in probes:
        encoding = tokenizer(probe.text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoding["input_ids"][:max_tokens], encoding["offset_mapping"][:max_tokens]
        if not ids:
            raise ProbeSetError(f"the probe {probe.text!r} encodes to no tokens")
        texts.append(probe.text[: offsets[-1][1]])
        counts.append(len(ids))
    if len(set(texts)) != len(texts):
        raise ProbeSetError(f"two probes are the same once cut to fingerprint.max_tokens = {max_tokens} tokens")
    return pa.table(
        {
            "probe_id": np.arange(len(probes), dtype=np.int32),
            "kind": [p.kind for p in probes],
            "text": texts,
            "n_tokens": np.array(counts, dtype=np.int32),
        },
        schema=FINGERPRINT_PROBES_SCHEMA,
    )


@dataclass(frozen=True)
class ProbeBatch:
    """Probes as model inputs: right-padded token ids and the mask of real tokens."""

    input_ids: torch.Tensor  # [P, T] int64
    mask: torch.Tensor  # [P, T] bool

    def batches(self, size: int):
        for start in range(0, len(self.input_ids), size):
            yield self.input_ids[start : start + size], self.mask[start : start + size]


def probe_batch(probes: pa.Table, tokenizer: PreTrainedTokenizerBase) -> ProbeBatch:
    """Encodes the stored probes (already cut) exactly as `probes_table` did."""
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in probes.column("text").to_pylist()]
    expected = probes.column("n_tokens").to_pylist()
    if [len(ids) for ids in encoded] != expected:
        raise ProbeSetError("fingerprint_probes no longer encode to their stored lengths: rebuild the eval set")
    length = max(expected)
    input_ids = torch.zeros((len(encoded), length), dtype=torch.int64)  # the pad id is never read
    mask = torch.zeros((len(encoded), length), dtype=torch.bool)
    for row, ids in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = True
    return ProbeBatch(input_ids, mask)


def table_hash(table: pa.Table) -> str:
    """Identifies a probe or text set: its rows, in order."""
    return "sha256:" + hashlib.sha256(json.dumps(table.to_pylist(), sort_keys=True).encode()).hexdigest()


FINGERPRINT_PROBES = LakeTable(
    "fingerprint_probes", FINGERPRINT_PROBES_SCHEMA, SUITE, "Per suite, the activation fingerprints' probe texts."
)
