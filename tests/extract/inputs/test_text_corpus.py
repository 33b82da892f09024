"""Evaluation corpora from where users keep text: files, folders, tables and datasets."""

from __future__ import annotations

import gzip
import json
from pydoc_data.topics import topics

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract.inputs.text_corpus import CorpusError, CorpusSource, documents_hash, read_documents, sample_order

# Real prose from an installed package: the Python documentation's topics (pydoc_data).
TEXTS = [topics[name] for name in sorted(topics)[:12]]


def _read(spec, **keys) -> list[str]:
    return [document.text for document in read_documents(CorpusSource(str(spec), **keys))]


def test_every_file_format_gives_the_same_documents(tmp_path):
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    for index, text in enumerate(TEXTS):
        (tmp_path / "folder" / ("sub" if index % 2 else "") / f"{index:02d}.txt").write_text(text)
    (tmp_path / "folder" / "notes.md").write_text("not a .txt file: skipped")
    rows = [{"body": text, "id": index} for index, text in enumerate(TEXTS)]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with gzip.open(tmp_path / "docs.jsonl.gz", "wt") as handle:
        handle.write("\n".join(json.dumps(row) for row in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "docs.parquet")
    pa.Table.from_pylist(rows).to_pandas().to_csv(tmp_path / "docs.csv", index=False)

    for name in ("docs.jsonl", "docs.jsonl.gz", "docs.parquet", "docs.csv"):
        assert _read(tmp_path / name, text_column="body") == TEXTS, name
    # A folder: one document per .txt file, in path order.
    by_path = sorted(range(len(TEXTS)), key=lambda i: f"{'sub/' if i % 2 else ''}{i:02d}.txt")
    assert _read(tmp_path / "folder") == [TEXTS[i] for i in by_path]
    (tmp_path / "one.txt").write_text(TEXTS[0])
    assert _read(tmp_path / "one.txt") == [TEXTS[0]]


def test_a_hub_dataset_is_read_through_datasets(tmp_path):
    """`hub:<id>` goes to datasets.load_dataset; a local dataset folder stands in for the Hub here."""
    folder = tmp_path / "dataset"
    (folder / "data").mkdir(parents=True)
    pq.write_table(pa.table({"text": TEXTS[:5]}), folder / "data" / "validation-00000-of-00001.parquet")
    pq.write_table(pa.table({"text": TEXTS[5:]}), folder / "data" / "train-00000-of-00001.parquet")
    assert _read(f"hub:{folder}") == TEXTS[:5]
    assert _read(f"hub:{folder}", split="train") == TEXTS[5:]
    with pytest.raises(CorpusError, match="no column 'body'"):
        _read(f"hub:{folder}", text_column="body")


def test_a_hub_dataset_with_several_configurations_is_read_by_its_subset(tmp_path):
    folder = tmp_path / "dataset"
    for subset, texts in (("small", TEXTS[:2]), ("big", TEXTS[2:])):
        (folder / subset).mkdir(parents=True)
        pq.write_table(pa.table({"text": texts}), folder / subset / "validation.parquet")
    configs = "".join(
        f"- config_name: {name}\n  data_files:\n  - split: validation\n    path: {name}/validation.parquet\n"
        for name in ("small", "big")
    )
    (folder / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")
    assert _read(f"hub:{folder}", subset="big") == TEXTS[2:]
    assert _read(f"hub:{folder}", subset="small") == TEXTS[:2]


def test_an_unreachable_hub_dataset_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    with pytest.raises(CorpusError, match="'someone/missing-corpus' .*cannot be loaded.*HF_HUB_OFFLINE"):
        _read("hub:someone/missing-corpus")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nowhere", "does not exist"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "has no .txt files"),
        (lambda p: (p / "blank.txt").write_text("  \n\n") and p / "blank.txt", "holds no text"),
        (lambda p: (p / "a.jsonl").write_text('{"body": "x"}\n') and p / "a.jsonl", r"no column 'text'.*\['body'\]"),
        (lambda p: (p / "a.jsonl").write_text('{"text": 3}\n') and p / "a.jsonl", "holds int, not text"),
        (lambda p: (p / "a.jsonl").write_text("{oops\n") and p / "a.jsonl", "line 1: not valid JSON"),
        (lambda p: (p / "a.xlsx").write_text("x") and p / "a.xlsx", r"not a folder, \.txt"),
    ],
)
def test_bad_corpora_are_named(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(CorpusError, match=message):
        read_documents(CorpusSource(str(path)))


def test_a_seeded_sample_is_the_same_every_time_and_differs_by_seed(tmp_path):
    documents = read_documents(CorpusSource(str(_jsonl(tmp_path))))
    assert sample_order(documents, None) == documents
    first, again, other = (sample_order(documents, seed) for seed in (7, 7, 8))
    assert first == again and first != other and sorted(first, key=lambda d: int(d.doc_id)) == documents
    assert documents_hash(first) == documents_hash(again) != documents_hash(other)


def _jsonl(folder):
    path = folder / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    return path
