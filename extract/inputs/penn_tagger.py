"""NLTK's Penn-tag perceptron tagger, built from a PyPI package instead of NLTK's downloader.

NLTK's English tagger is the averaged perceptron that Matthew Honnibal wrote for TextBlob, and
`textblob-aptagger==0.2.0` ships its trained weights as a pickle of (weights, tagdict, classes).
The build machines reach PyPI but not NLTK's downloader, so those weights are written out as
the three JSON files of `taggers/averaged_perceptron_tagger_eng`, which NLTK then loads as if
`nltk.download('averaged_perceptron_tagger_eng')` had put them there.
"""

from __future__ import annotations

import functools
import importlib.metadata
import pickle
import shutil
import tempfile
from pathlib import Path

import nltk
from nltk.tag.perceptron import PerceptronTagger

from extract.lake.atomic_writes import install_folder

_DISTRIBUTION = "textblob-aptagger"
_PICKLE = "textblob_aptagger/trontagger-0.1.0.pickle"
_LANG = "eng"


class TaggerUnavailable(RuntimeError):
    """The tagger's weights could not be found or read; the message says how to provide them."""


def install_perceptron_tagger(nltk_data_dir: Path) -> Path:
    """Write the tagger to `<nltk_data_dir>/taggers/averaged_perceptron_tagger_eng` and return
    that directory. Idempotent; also puts nltk_data_dir on `nltk.data.path`."""
    nltk_data_dir = Path(nltk_data_dir).resolve()
    # NLTK 3.10 reads and writes model files only inside the directories on nltk.data.path.
    if str(nltk_data_dir) not in nltk.data.path:
        nltk.data.path.append(str(nltk_data_dir))
    target = nltk_data_dir / "taggers" / f"averaged_perceptron_tagger_{_LANG}"
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    weights, tagdict, classes = _read_pickle(target)
    tagger = PerceptronTagger(load=False)
    tagger.decode_json_params((weights, tagdict, classes))
    # Staged beside the target and renamed into place, so NLTK never finds a partial model.
    staged = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        # NLTK's own writer, so the file names and JSON shapes are exactly those it loads.
        tagger.save_to_json(lang=_LANG, loc=str(staged))
        install_folder(staged, target, _is_complete)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return target


def pos_tag(words: list[str], nltk_data_dir: Path) -> list[tuple[str, str]]:
    """Penn Treebank tags for already tokenized words, as `nltk.pos_tag(words)` gives them."""
    if isinstance(words, str):
        raise TypeError("pos_tag takes a list of words, not a string (split it first)")
    return _tagger(Path(nltk_data_dir).resolve()).tag(list(words))


@functools.cache
def _tagger(nltk_data_dir: Path) -> PerceptronTagger:
    # Loaded from this directory, not through nltk.pos_tag's search of nltk.data.path, which
    # would take whichever tagger comes first there; cached because it parses 7 MB of JSON.
    return PerceptronTagger(lang=_LANG, loc=install_perceptron_tagger(nltk_data_dir))


def _is_complete(model_dir: Path) -> bool:
    files = PerceptronTagger(load=False).param_files(_LANG)
    return all((model_dir / name).is_file() for name in files)


class _ModelUnpickler(pickle.Unpickler):
    """Admits the one class the weights pickle names, so the file cannot run arbitrary code."""

    def find_class(self, module: str, name: str) -> type:
        # Written by Python 2, the pickle names set's module as "__builtin__".
        if (module, name) in {("__builtin__", "set"), ("builtins", "set")}:
            return set
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in the tagger pickle")


def _read_pickle(target: Path) -> tuple[dict[str, dict[str, float]], dict[str, str], set[str]]:
    # Located through the distribution's file list: importing textblob_aptagger fails on the
    # textblob releases that install today, so importlib.resources cannot reach the file.
    try:
        path = Path(importlib.metadata.distribution(_DISTRIBUTION).locate_file(_PICKLE))
    except importlib.metadata.PackageNotFoundError as exc:
        raise TaggerUnavailable(_missing(f"{_DISTRIBUTION} is not installed", target)) from exc
    if not path.is_file():
        raise TaggerUnavailable(_missing(f"{path} is missing", target))
    with path.open("rb") as f:
        # Python 2 str objects decode as ASCII: every feature, word and tag in it is ASCII, and
        # a stray byte should fail loudly rather than turn into a different key.
        return _ModelUnpickler(f, encoding="ascii").load()


def _missing(problem: str, target: Path) -> str:
    return (
        f"{problem}: pip install {_DISTRIBUTION}==0.2.0, or put NLTK's "
        f"averaged_perceptron_tagger_{_LANG} in {target} "
        f"(nltk.download('averaged_perceptron_tagger_{_LANG}') where there is internet)"
    )
