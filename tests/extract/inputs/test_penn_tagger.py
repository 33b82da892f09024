"""The perceptron tagger written out for NLTK, loaded and run by NLTK itself."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
from pathlib import Path

import nltk
import pytest
from nltk.tag.perceptron import PerceptronTagger

from extract.inputs.penn_tagger import TaggerUnavailable, install_perceptron_tagger, pos_tag

EXPECTED_FILES = [
    "averaged_perceptron_tagger_eng.classes.json",
    "averaged_perceptron_tagger_eng.tagdict.json",
    "averaged_perceptron_tagger_eng.weights.json",
]
FOX = "The quick brown fox jumps over the lazy dog .".split()


@pytest.fixture(scope="module")
def nltk_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nltk_data")


@pytest.fixture(scope="module")
def model_dir(nltk_data: Path) -> Path:
    return install_perceptron_tagger(nltk_data)


def test_install_writes_the_files_nltk_expects(nltk_data: Path, model_dir: Path) -> None:
    assert model_dir == nltk_data.resolve() / "taggers" / "averaged_perceptron_tagger_eng"
    assert sorted(os.listdir(model_dir)) == EXPECTED_FILES
    # The staging directory went away with the rename.
    assert os.listdir(model_dir.parent) == [model_dir.name]


def test_written_model_is_the_pickled_one(model_dir: Path) -> None:
    pickled = importlib.metadata.distribution("textblob-aptagger").locate_file(
        "textblob_aptagger/trontagger-0.1.0.pickle"
    )
    with open(pickled, "rb") as f:
        weights, tagdict, classes = pickle.load(f)
    written = [json.loads((model_dir / name).read_text()) for name in EXPECTED_FILES]
    assert set(written[0]) == classes
    assert written[1] == tagdict
    assert written[2] == weights


def test_nltk_loads_it_by_name(nltk_data: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only this directory on the path, so NLTK cannot be finding a downloaded copy instead.
    monkeypatch.setattr(nltk.data, "path", [str(nltk_data.resolve())])
    tagger = PerceptronTagger(lang="eng")
    assert tagger.tag(FOX) == pos_tag(FOX, nltk_data)


def test_pos_tag_gives_penn_tags(nltk_data: Path) -> None:
    # TextBlob's model (not the one nltk.download fetches) reads "jumps" here as a plural noun,
    # as TextBlob's own tagger does; with a pronoun subject it is a verb.
    assert pos_tag(FOX, nltk_data) == [
        ("The", "DT"),
        ("quick", "JJ"),
        ("brown", "NN"),
        ("fox", "NN"),
        ("jumps", "NNS"),
        ("over", "IN"),
        ("the", "DT"),
        ("lazy", "JJ"),
        ("dog", "NN"),
        (".", "."),
    ]
    assert dict(pos_tag("He jumps over the dog .".split(), nltk_data))["jumps"] == "VBZ"


def test_pos_tag_refuses_an_untokenized_string(nltk_data: Path) -> None:
    with pytest.raises(TypeError, match="list of words"):
        pos_tag("The fox jumps .", nltk_data)


def test_install_is_idempotent(nltk_data: Path, model_dir: Path) -> None:
    before = {name: (model_dir / name).stat().st_mtime_ns for name in EXPECTED_FILES}
    assert install_perceptron_tagger(nltk_data) == model_dir
    after = {name: (model_dir / name).stat().st_mtime_ns for name in EXPECTED_FILES}
    assert after == before


def test_missing_package_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(TaggerUnavailable, match="pip install textblob-aptagger==0.2.0"):
        install_perceptron_tagger(tmp_path)
    assert not (tmp_path / "taggers" / "averaged_perceptron_tagger_eng").exists()
