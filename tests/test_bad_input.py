"""Bad input: each stops with an error that names the problem, and nothing already stored is lost.

Each test first extracts one partition (what is "already stored"), breaks something, runs the
extraction of another, and checks the error and that the stored partition's files are unchanged.
Settings out of range are in test_config.py, seeds with different vocabularies and NaN weights in
test_extraction.py, a hub suite offline in test_suites.py.
"""

from __future__ import annotations

import errno
import hashlib
import shutil

import pyarrow.parquet as pq
import pytest
import requests
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

from extract import lake as lake_module
from extract import pipeline
from extract.evalset import EvalSetError
from extract.lake import LakeWriteError, checkpoint_dir, suite_table_path
from extract.suites import HubSuite, SuiteUnavailable

STORED = ("a", 1)
NEXT = ("a", 2)


def _digests(folder) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.fixture
def stored(warehouse_copy):
    """A warehouse with one extracted partition, and the digests of its files."""
    settings = warehouse_copy()
    list(pipeline.extract_checkpoints(settings, "micro", [STORED]))
    folder = checkpoint_dir(settings.paths.lake, "micro", *STORED)
    return settings, folder, _digests(folder)


def _nothing_lost(settings, folder, digests) -> None:
    assert _digests(folder) == digests, "the stored partition changed"
    assert not checkpoint_dir(settings.paths.lake, "micro", *NEXT).exists(), "a partition was left half written"
    staging = settings.paths.lake / lake_module.STAGING
    assert not (staging.exists() and list(staging.iterdir())), "a staging folder was left behind"


def _run(settings, partitions=(NEXT,)):
    list(pipeline.extract_checkpoints(settings, "micro", list(partitions)))


def test_a_truncated_safetensors_file_is_named(stored):
    settings, folder, digests = stored
    weights = settings.paths.suites / "micro" / "a-seed2" / "step2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(SuiteUnavailable, match="a-seed2/step2"):
        _run(settings)
    _nothing_lost(settings, folder, digests)


def test_a_missing_seed_is_named(stored):
    settings, folder, digests = stored
    shutil.rmtree(settings.paths.suites / "micro" / "a-seed3" / "step2")
    with pytest.raises(SuiteUnavailable, match="a-seed3/step2 is missing"):
        _run(settings)
    _nothing_lost(settings, folder, digests)


def test_an_empty_evaluation_set_is_named(stored):
    settings, folder, digests = stored
    path = suite_table_path(settings.paths.lake, "eval_tokens", "micro")
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    with pytest.raises(EvalSetError, match="the evaluation set is empty"):
        _run(settings)
    _nothing_lost(settings, folder, digests)


def test_a_full_disk_is_named_and_the_old_copy_kept(stored, monkeypatch):
    settings, folder, digests = stored
    real = lake_module._write_parquet

    def disk_full(table, path):
        if path.name == "pair_kl.parquet":
            path.write_bytes(b"PAR1 half a file")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(table, path)

    monkeypatch.setattr(lake_module, "_write_parquet", disk_full)
    # the stored partition again (its replacement fails), then the next one
    with pytest.raises(LakeWriteError, match=r"step=1 failed, its previous copy is untouched.*No space left on device"):
        _run(settings, [STORED, NEXT])
    _nothing_lost(settings, folder, digests)


def _http_error(kind, message):
    response = requests.Response()
    response.status_code = 404
    return kind(message, response=response)


@pytest.mark.parametrize(
    "error, message",
    [
        (_http_error(RepositoryNotFoundError, "Repository Not Found"), "pythia-14m-seed11 does not exist on the"),
        (_http_error(RevisionNotFoundError, "Revision Not Found"), "has no revision step99"),
    ],
)
def test_a_hub_id_that_does_not_exist_is_named(monkeypatch, error, message):
    def not_found(*args, **kwargs):
        raise error

    monkeypatch.setattr("extract.suites.hf_hub_download", not_found)
    suite = HubSuite("polypythia", ("14m",), (11,))
    with pytest.raises(SuiteUnavailable, match=message):
        suite.weights_folder(suite.checkpoint("14m", 11, 99))
