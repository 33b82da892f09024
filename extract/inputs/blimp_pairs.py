"""BLiMP minimal pairs: does a model give the grammatical sentence of a pair the higher probability?

BLiMP, The Benchmark of Linguistic Minimal Pairs for English (Warstadt, Parrish, Liu, Mohananey,
Peng, Wang and Bowman, TACL 8, 2020; CC BY 4.0), has 67 paradigms of 1,000 pairs, each a
grammatical `sentence_good` and an ungrammatical `sentence_bad` that differ minimally. The pairs
come from a JSON-lines file (the shared slim copy), a folder of BLiMP's original per-paradigm
`<UID>.jsonl` files, or the `nyu-mll/blimp` dataset on the Hugging Face Hub; only the fields
`sentence_good`, `sentence_bad`, `UID`, `field`, `linguistics_term` and `pairID` (the Hub's
`pair_id`) are read. The first `pairs_per_paradigm` pairs of each paradigm, by pairID, are kept.

Beginning and end of sequence: each sentence is tokenized bare (no special tokens) and fed behind
the suite's BOS token (GPT-NeoX's <|endoftext|>), as the log-likelihood texts are, so every token
of the sentence, the first included, is scored: log p(s) = sum_t log p(s_t | BOS, s_<t), in nats.
No end-of-sequence token is scored unless `blimp.append_eos` is set; then the end-of-text token is
appended after the sentence and its log-probability is part of the score (it rewards a sentence
for being complete). Every model of a suite is scored the same way, so seeds and steps compare.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from transformers import PreTrainedTokenizerBase

from extract.config import BlimpConfig
from extract.inputs.eval_tokens import EvalSetError
from extract.inputs.loglik_texts import TextBatch, token_batch
from extract.lake.tables import SUITE, LakeTable
from extract.sources.suites import SuiteUnavailable

BLIMP_PAIRS_SCHEMA = pa.schema(
    [
        ("pair_index", pa.int32()),
        ("uid", pa.string()),
        ("field", pa.string()),
        ("linguistics_term", pa.string()),
        ("pair_id", pa.string()),
        ("sentence_good", pa.string()),
        ("sentence_bad", pa.string()),
        ("n_tokens_good", pa.int32()),
        ("n_tokens_bad", pa.int32()),
    ]
)

# A pair's fields: the source's name of each, and the name it has here.
FIELDS = {
    "UID": "uid",
    "field": "field",
    "linguistics_term": "linguistics_term",
    "pairID": "pair_id",
    "sentence_good": "sentence_good",
    "sentence_bad": "sentence_bad",
}


class BlimpError(ValueError):
    """The BLiMP input cannot be read or does not hold what is asked of it; the message says why."""


def load_blimp(config: BlimpConfig) -> list[dict]:
    """Every pair of the source, in its order, as dicts with keys uid, field, linguistics_term,
    pair_id (str), sentence_good and sentence_bad."""
    if config.hub_dataset is not None:
        return _load_hub(config.hub_dataset)
    path = Path(config.source)
    if path.is_dir():
        files = sorted([*path.glob("*.jsonl"), *path.glob("*.jsonl.gz")])
        if not files:
            raise BlimpError(f"blimp.source {path} is a folder without .jsonl or .jsonl.gz files")
    elif path.is_file():
        files = [path]
    else:
        raise BlimpError(f"blimp.source {path} does not exist: give a .jsonl(.gz) file, a folder or 'hub:<id>'")
    return _pairs(record for file in files for record in _jsonl_records(file))


def _load_hub(dataset: str) -> list[dict]:
    # Imported here: only the Hub source needs them.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        root = Path(
            snapshot_download(
                repo_id=dataset, repo_type="dataset", allow_patterns=["*.parquet", "*.jsonl", "*.jsonl.gz", "*.json"]
            )
        )
    except (OSError, HfHubHTTPError, LocalEntryNotFoundError) as error:
        raise SuiteUnavailable(
            f"BLiMP dataset {dataset!r} cannot be fetched from the Hugging Face Hub ({error}): "
            f"use the local copy, blimp.source = path of a .jsonl(.gz) file or folder"
        ) from error
    # The Hub holds the data as Parquet (one folder per paradigm) or, in older revisions, as
    # JSON lines; metadata such as dataset_infos.json is not data.
    parquet = sorted(root.rglob("*.parquet"))
    if parquet:
        return _pairs(record for file in parquet for record in _parquet_records(file))
    files = sorted(
        file
        for pattern in ("*.jsonl", "*.jsonl.gz", "*.json")
        for file in root.rglob(pattern)
        if not file.name.startswith("dataset_info")
    )
    if not files:
        raise BlimpError(f"BLiMP dataset {dataset!r} ({root}) has no .parquet, .jsonl or .json data files")
    return _pairs(record for file in files for record in _jsonl_records(file))


def _jsonl_records(path: Path) -> Iterator[tuple[str, dict]]:
    """(where, record) per non-blank line; `where` is "file line n" for messages."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{path} line {number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise BlimpError(f"{where}: not valid JSON ({error.msg}): {line.strip()[:80]!r}") from error
                if not isinstance(record, dict):
                    raise BlimpError(f"{where}: expected a JSON object, got {type(record).__name__}")
                yield where, record
    except (OSError, UnicodeDecodeError) as error:
        raise BlimpError(f"{path} cannot be read as UTF-8 JSON lines: {error}") from error


def _parquet_records(path: Path) -> Iterator[tuple[str, dict]]:
    for number, record in enumerate(pq.read_table(path).to_pylist()):
        yield f"{path} row {number}", record


def _pairs(records: Iterator[tuple[str, dict]]) -> list[dict]:
    """The six fields of every record, checked; a (UID, pairID) seen twice is an error."""
    pairs, seen = [], {}
    for where, record in records:
        if "pairID" not in record and "pair_id" in record:  # the Hub's name for it
            record = {**record, "pairID": record["pair_id"]}
        missing = [name for name in FIELDS if name not in record]
        if missing:
            raise BlimpError(f"{where}: missing field(s) {missing}; a BLiMP pair has {list(FIELDS)}")
        pair = {}
        for source_name, name in FIELDS.items():
            value = record[source_name]
            if name == "pair_id" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise BlimpError(f"{where}: field {source_name!r} must be a string, got {value!r}")
            pair[name] = value
        for name in ("uid", "pair_id", "sentence_good", "sentence_bad"):
            if not pair[name].strip():
                raise BlimpError(f"{where}: field {name!r} is empty")
        key = (pair["uid"], pair["pair_id"])
        if key in seen:
            raise BlimpError(f"{where}: duplicate pair (UID {key[0]!r}, pairID {key[1]!r}), first at {seen[key]}")
        seen[key] = where
        pairs.append(pair)
    if not pairs:
        raise BlimpError("the BLiMP source holds no pairs")
    return pairs


def _pair_order(pair_id: str) -> tuple:
    """Numeric order for numeric pairIDs ("2" before "10"), text order for any others, after them."""
    return (0, int(pair_id), "") if pair_id.isdigit() else (1, 0, pair_id)


def select_pairs(pairs: list[dict], config: BlimpConfig) -> list[dict]:
    """The first `pairs_per_paradigm` pairs of each kept paradigm by pairID, sorted by (uid, pairID)."""
    by_paradigm: dict[str, list[dict]] = {}
    for pair in pairs:
        by_paradigm.setdefault(pair["uid"], []).append(pair)
    unknown = [uid for uid in config.paradigms if uid not in by_paradigm]
    if unknown:
        raise BlimpError(
            f"blimp.paradigms names {unknown}, which the source {config.source} does not have; "
            f"it has {sorted(by_paradigm)}"
        )
    selected = []
    for uid in sorted(config.paradigms or by_paradigm):
        kept = sorted(by_paradigm[uid], key=lambda pair: _pair_order(pair["pair_id"]))[: config.pairs_per_paradigm]
        if not kept:
            raise BlimpError(f"BLiMP paradigm {uid!r} has no pairs")
        selected.extend(kept)
    return selected


def blimp_pairs_table(pairs: list[dict], tokenizer: PreTrainedTokenizerBase) -> pa.Table:
    """The selected pairs with their token counts under the suite tokenizer (no special tokens)."""
    rows: dict[str, list] = {name: [pair[name] for pair in pairs] for name in FIELDS.values()}
    rows["pair_index"] = list(range(len(pairs)))
    for kind in ("good", "bad"):
        encoded = tokenizer(rows[f"sentence_{kind}"], add_special_tokens=False)["input_ids"] if pairs else []
        rows[f"n_tokens_{kind}"] = [len(ids) for ids in encoded]
    return pa.table({name: rows[name] for name in BLIMP_PAIRS_SCHEMA.names}, schema=BLIMP_PAIRS_SCHEMA)


def blimp_sentence_batch(
    pairs_table: pa.Table, tokenizer: PreTrainedTokenizerBase, bos_token_id: int, eos_token_id: int | None = None
) -> TextBatch:
    """The 2N sentences as model inputs, interleaved: row 2i is pair i's good sentence, 2i+1 its bad
    one. Each follows BOS and is scored in full; with `eos_token_id`, that token is appended and
    scored too (blimp.append_eos)."""
    good = pairs_table.column("sentence_good").to_pylist()
    bad = pairs_table.column("sentence_bad").to_pylist()
    sentences = [sentence for pair in zip(good, bad) for sentence in pair]
    encoded = tokenizer(sentences, add_special_tokens=False)["input_ids"]
    stored = [
        n
        for pair in zip(pairs_table.column("n_tokens_good").to_pylist(), pairs_table.column("n_tokens_bad").to_pylist())
        for n in pair
    ]
    if [len(ids) for ids in encoded] != stored:
        raise EvalSetError("blimp_pairs no longer encode to their stored lengths: rebuild the eval set")
    return token_batch(encoded, bos_token_id, eos_token_id)


def blimp_set_hash(pairs_table: pa.Table, append_eos: bool) -> str:
    """Identifies what the models scored: the pairs, in order, and whether EOS was scored too."""
    content = {"append_eos": bool(append_eos), "pairs": pairs_table.to_pylist()}
    return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


BLIMP_PAIRS = LakeTable(
    "blimp_pairs",
    BLIMP_PAIRS_SCHEMA,
    SUITE,
    "Per causal suite, the BLiMP minimal pairs scored, with token counts.",
    objectives=("causal",),
)
