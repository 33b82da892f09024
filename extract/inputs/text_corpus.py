"""A suite's evaluation text, and its unigram reference, from where the user keeps it.

`eval.corpus` (and `eval.unigram`) name a source:

- `brown`: the held-out Brown documents (every `heldout_every`-th), the default; for `unigram`,
  `train` is Brown's training split, which is what the mini suites train on.
- a path: a plain-text file (one document), a folder of them (`*.txt`, one document per file,
  in path order), or a JSON-lines (`.jsonl`, `.jsonl.gz`), Parquet or CSV file with one
  document per row in the column `eval.text_column`;
- `hub:<dataset id>`: a Hugging Face dataset, split `eval.split` (and configuration `eval.subset`,
  if it has several), column `eval.text_column`, read by `datasets.load_dataset` (from the Hub,
  or from its cache with HF_HUB_OFFLINE=1).

For `unigram`, a Parquet file with the columns `token_id` and `count` is taken as the counts
themselves (the training data's, counted elsewhere).

Documents come in the source's order, or in a seeded random order with `eval.sample_seed`: a
sample of a large split (the paper's Pile validation sample) is then the same every time, which
the published code's unseeded sample is not.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from extract.config import HUB_PREFIX
from extract.inputs.brown_corpus import Document

BROWN = "brown"
BROWN_TRAIN = "train"
TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")


class CorpusError(ValueError):
    """A corpus cannot be read or has no usable text; the message names it and says why."""


@dataclass(frozen=True)
class CorpusSource:
    """Where a corpus lies and how to read it (the corpus keys of [eval], resolved)."""

    spec: str  # "brown", "train", "hub:<id>" or a path
    text_column: str = "text"
    split: str = "validation"
    subset: str | None = None  # a hub dataset's configuration name

    @property
    def hub_dataset(self) -> str | None:
        return self.spec.removeprefix(HUB_PREFIX) if self.spec.startswith(HUB_PREFIX) else None

    @property
    def is_brown(self) -> bool:
        return self.spec in (BROWN, BROWN_TRAIN)

    def label(self) -> str:
        """A short name for tables and messages: brown, the dataset id, or the file's name."""
        if self.is_brown:
            return self.spec
        return self.hub_dataset or Path(self.spec).name


def read_documents(source: CorpusSource) -> list[Document]:
    """Every non-blank document of a file, folder or Hugging Face dataset source, in its order."""
    if source.hub_dataset is not None:
        documents = _hub_documents(source)
    else:
        path = Path(source.spec)
        if not path.exists():
            raise CorpusError(f"the corpus {path} does not exist")
        documents = _folder_documents(path) if path.is_dir() else _file_documents(path, source.text_column)
    documents = [document for document in documents if document.text.strip()]
    if not documents:
        raise CorpusError(f"the corpus {source.spec} holds no text")
    return documents


def sample_order(documents: Sequence[Document], sample_seed: int | None) -> list[Document]:
    """The documents in their own order, or permuted by a generator seeded with `sample_seed`."""
    if sample_seed is None:
        return list(documents)
    order = np.random.default_rng(sample_seed).permutation(len(documents))
    return [documents[i] for i in order]


def documents_hash(documents: Sequence[Document]) -> str:
    """Identifies the texts and their order (for the manifest)."""
    digest = hashlib.sha256()
    for document in documents:
        for part in (document.doc_id, document.text):
            encoded = part.encode()
            digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return "sha256:" + digest.hexdigest()


def _folder_documents(folder: Path) -> list[Document]:
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix in TEXT_SUFFIXES)
    if not files:
        raise CorpusError(f"the corpus folder {folder} has no {'/'.join(TEXT_SUFFIXES)} files")
    return [_text_file(path, str(path.relative_to(folder))) for path in files]


def _text_file(path: Path, doc_id: str) -> Document:
    try:
        return Document(doc_id, "", path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path} cannot be read as UTF-8 text: {error}") from error


def _file_documents(path: Path, column: str) -> list[Document]:
    name = path.name.lower()
    if name.endswith(TEXT_SUFFIXES):
        return [_text_file(path, path.name)]
    if name.endswith(JSONL_SUFFIXES):
        return _column_documents(path, column, _jsonl_rows(path))
    if name.endswith(".parquet"):
        schema = pq.read_schema(path)
        _check_column(path, column, schema.names)
        values = pq.read_table(path, columns=[column]).column(column).to_pylist()
        return _column_documents(path, column, ({column: value} for value in values))
    if name.endswith(".csv"):
        return _column_documents(path, column, _csv_rows(path))
    raise CorpusError(
        f"the corpus {path} is not a folder, .txt, .jsonl(.gz), .parquet or .csv file; "
        "name one of those or hub:<dataset id>"
    )


def _column_documents(path: Path | str, column: str, rows: Iterator[dict]) -> list[Document]:
    documents = []
    for index, row in enumerate(rows):
        if index == 0:
            _check_column(path, column, list(row))
        text = row.get(column)
        if text is not None and not isinstance(text, str):
            raise CorpusError(f"{path} row {index}: column {column!r} holds {type(text).__name__}, not text")
        documents.append(Document(str(index), "", text or ""))
    return documents


def _check_column(path: Path | str, column: str, names: Sequence[str]) -> None:
    if column not in names:
        raise CorpusError(f"{path} has no column {column!r} (eval.text_column); its columns: {list(names)}")


def _jsonl_rows(path: Path) -> Iterator[dict]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise CorpusError(f"{path} line {number}: not valid JSON ({error.msg})") from error
                if not isinstance(row, dict):
                    raise CorpusError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
                yield row
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path} cannot be read as UTF-8 JSON lines: {error}") from error


def _csv_rows(path: Path) -> Iterator[dict]:
    # The csv module, not pyarrow's reader: documents hold newlines inside quoted fields, which
    # pyarrow's CSV reader refuses unless told to expect them.
    csv.field_size_limit(1 << 30)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CorpusError(f"{path} cannot be read as UTF-8 CSV: {error}") from error


def _hub_documents(source: CorpusSource) -> list[Document]:
    dataset_id = source.hub_dataset
    try:
        import datasets
    except ImportError as error:  # an optional dependency for a user who removed it
        raise CorpusError(f"reading the dataset {dataset_id!r} needs the package `datasets`") from error
    try:
        dataset = datasets.load_dataset(dataset_id, source.subset, split=source.split)
    # Broad on purpose: offline, a missing split or config, and a private dataset each raise
    # their own type, from datasets, huggingface_hub or the HTTP client; the user needs the name.
    except Exception as error:
        raise CorpusError(
            f"the dataset {dataset_id!r} (split {source.split!r}) cannot be loaded: {error}. Without "
            "internet it must be in the Hugging Face cache (HF_HUB_OFFLINE=1); or point eval.corpus "
            "at local files"
        ) from error
    _check_column(f"the dataset {dataset_id!r}", source.text_column, dataset.column_names)
    return _column_documents(dataset_id, source.text_column, iter(dataset.select_columns([source.text_column])))
