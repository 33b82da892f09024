"""The fault-injection suite: each test injects one fault (a broken input, a full disk, a failed
rename) into an extraction, expects an error that names the problem, and checks that nothing
already stored is lost: the stored partition's files are byte for byte as they were, no half
partition or staging folder is left, and where the fault passes (a full disk, a failed rename,
a fixed checkpoint) the same run then succeeds.

`make faults` runs every test marked `fault` (these, the kills in test_crash_safety.py, the
replacement under readers in test_publish.py, ...) and prints how many faults were tried and how
many survived with nothing lost. Settings out of range are checked here as the pipeline reads
them; every setting's own bounds are in test_config.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from safetensors.torch import load_file, save_file

from extract import pipeline
from extract.config import ConfigError, load_settings
from extract.engine.extractor import NonFiniteOutputs
from extract.inputs.eval_tokens import EvalSetError
from extract.lake import partition_store as lake_module
from extract.lake.checks import check_kl_non_negative, check_manifests_complete, check_not_quarantined
from extract.lake.partition_store import LakeWriteError, read_quarantine
from extract.lake.tables import checkpoint_dir
from extract.registry import suite_table_path
from extract.sources.suites import HubSuite, SuiteUnavailable

pytestmark = pytest.mark.fault

STORED = ("a", 1)
NEXT = ("a", 2)
PARTITION_FILES = ("token_stats", "pair_kl", "icl_scores", "fingerprints", "weight_stats", "weight_sketches",
                   "loglik", "blimp_scores")  # fmt: skip


def _digests(folder) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def template(micro_settings, micro_config_path, tmp_path_factory):
    """A warehouse with one partition extracted, copied by each test."""
    root = tmp_path_factory.mktemp("faults") / "template"
    shutil.copytree(micro_settings.paths.suites, root / "suites")
    for folder in micro_settings.paths.lake.iterdir():
        if not folder.name.startswith("."):
            shutil.copytree(folder, root / "lake" / folder.name, ignore=shutil.ignore_patterns("suite=micro-mlm"))
    settings = load_settings(micro_config_path, root)
    list(pipeline.extract_checkpoints(settings, "micro", [STORED]))
    return root


@pytest.fixture
def stored(template, micro_config_path, tmp_path):
    """A copy of the template warehouse, the stored partition's folder and the digests of its files."""
    root = tmp_path / "warehouse"
    shutil.copytree(template, root)
    settings = load_settings(micro_config_path, root)
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
    """Seed 3's run stops before step 2 (no step 2, nor any later one): the step waits for it, as
    for a run still training. (A seed that skipped the step but has later ones is left out of
    the partition instead: tests/extract/engine/test_extractor.py.)"""
    settings, folder, digests = stored
    for step in (2, 4, 8):
        shutil.rmtree(settings.paths.suites / "micro" / "a-seed3" / f"step{step}")
    with pytest.raises(SuiteUnavailable, match="a-seed3/step2 is missing, and the run has no later checkpoint"):
        _run(settings)
    _nothing_lost(settings, folder, digests)


def test_seeds_with_different_tokenizers_are_refused(stored):
    settings, folder, digests = stored
    suite = settings.paths.suites / "micro"
    tokenizer = json.loads((suite / "tokenizer" / "tokenizer.json").read_text())
    # seed 2 ships the suite's own tokenizer (accepted), seed 3 one with two tokens swapped
    shutil.copy(suite / "tokenizer" / "tokenizer.json", suite / "a-seed2" / "step2" / "tokenizer.json")
    vocab = tokenizer["model"]["vocab"]
    first, second = list(vocab)[100:102]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (suite / "a-seed3" / "step2" / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(SuiteUnavailable, match="a-seed3/step2: its tokenizer.json differs from the suite's"):
        _run(settings)
    _nothing_lost(settings, folder, digests)


def test_an_empty_evaluation_set_is_named(stored):
    settings, folder, digests = stored
    path = suite_table_path(settings.paths.lake, "eval_tokens", "micro")
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    with pytest.raises(EvalSetError, match="the evaluation set is empty"):
        _run(settings)
    _nothing_lost(settings, folder, digests)


@pytest.mark.parametrize("full_at", [*PARTITION_FILES, "manifest"])
def test_a_full_disk_is_named_and_the_old_copy_kept(stored, monkeypatch, full_at):
    settings, folder, digests = stored
    real_parquet, real_text = lake_module._write_parquet, Path.write_text

    def disk_full(path):
        path.write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    def write_parquet(table, path):
        return disk_full(path) if path.name == f"{full_at}.parquet" else real_parquet(table, path)

    def write_text(path, *args, **kwargs):
        return disk_full(path) if path.name == f"{full_at}.json" else real_text(path, *args, **kwargs)

    monkeypatch.setattr(lake_module, "_write_parquet", write_parquet)
    monkeypatch.setattr(Path, "write_text", write_text)
    # the stored partition again (its replacement fails), then the next one
    with pytest.raises(LakeWriteError, match=r"step=1 failed, its previous copy is untouched.*No space left on device"):
        _run(settings, [STORED, NEXT])
    monkeypatch.undo()
    _nothing_lost(settings, folder, digests)
    _run(settings, [STORED, NEXT])


def test_a_failed_rename_puts_the_old_copy_back(stored, monkeypatch):
    settings, folder, digests = stored
    real_replace = os.replace

    def replace(source, destination):
        if Path(destination) == folder and "/.staging/" in str(source):
            raise OSError(errno.EIO, "Input/output error", str(destination))
        real_replace(source, destination)

    monkeypatch.setattr(lake_module.os, "replace", replace)
    with pytest.raises(OSError, match="Input/output error"):
        _run(settings, [STORED])
    monkeypatch.undo()
    _nothing_lost(settings, folder, digests)
    assert not list((settings.paths.lake / lake_module.TRASH).iterdir())
    _run(settings, [STORED])  # the disk works again: the partition is replaced


@pytest.mark.parametrize(
    "line, bad, message",
    [
        ("top_k = 8", "top_k = 0", "eval.top_k"),
        ("compile = false", "compile = false\nchunk_mib = 0", "extraction.chunk_mib"),
        ("seeds = [1, 2, 3]", "seeds = [1]", "mini.seeds needs at least two seeds"),
        (
            "[mini_mlm.sizes.a]",
            '[[suites]]\nname = "pythia"\nkind = "hub"\nsizes = ["160m"]\nseeds = [0, 1]\n'
            'repo_pattern = "pythia-data-seed"\n\n[mini_mlm.sizes.a]',
            r"suites\.pythia\.repo_pattern: 'pythia-data-seed' is neither a built-in pattern \(polypythia, data-seed",
        ),
    ],
)
def test_settings_out_of_range_stop_the_run_before_it_starts(stored, micro_config_path, tmp_path, line, bad, message):
    """Settings are read, as every asset reads them, before anything is opened or written."""
    from orchestration.defs.resources import SeedconvSettings

    settings, folder, digests = stored
    text = micro_config_path.read_text()
    assert line in text
    config = tmp_path / "seedconv.toml"
    config.write_text(text.replace(line, bad, 1))
    with pytest.raises(ConfigError, match=message):
        SeedconvSettings(config_path=str(config), warehouse_root=str(settings.paths.root)).load()
    _nothing_lost(settings, folder, digests)


def _poison_nan_head(weights):
    weights["embed_out.weight"][0, 0] = float("nan")


def _poison_nan_body(weights):
    weights["gpt_neox.layers.0.mlp.dense_4h_to_h.weight"][0, 0] = float("nan")


def _poison_overflow(weights):
    # Every weight finite, yet the unembedding overflows: hidden states of 1e30 (the final norm's
    # bias) times an output row of 1e10 give logits of 1e41, past fp32's 3.4e38.
    weights["gpt_neox.final_layer_norm.weight"][:] = 0.0
    weights["gpt_neox.final_layer_norm.bias"][:] = 1e30
    weights["embed_out.weight"][7] = 1e10


@pytest.mark.parametrize(
    "poison, what",
    [
        (_poison_nan_head, "the output embedding holds NaN or infinite weights"),
        (_poison_nan_body, "the model gives NaN or infinite activations"),
        (_poison_overflow, "the model gives NaN or infinite ICL surprisals"),
    ],
    ids=["nan-output-embedding", "nan-activations", "infinite-logits"],
)
def test_nan_or_infinite_outputs_quarantine_the_partition(stored, poison, what):
    """A seed whose model gives NaN or infinite outputs (a diverged run): its partition is not
    written but quarantined with the reason, the copy stored before stays, the asset check fails
    naming it, the rest of the run goes on, and a good rerun lifts the quarantine."""
    settings, folder, digests = stored
    path = settings.paths.suites / "micro" / "a-seed2" / "step1" / "model.safetensors"
    original = path.read_bytes()
    weights = load_file(path)
    poison(weights)
    save_file(weights, path, metadata={"format": "pt"})

    quarantine, manifest = pipeline.extract_checkpoints(settings, "micro", [STORED, NEXT])
    assert quarantine["quarantined"].keys() == {"2"}
    assert quarantine["quarantined"]["2"].startswith(str(path.parent)) and what in quarantine["quarantined"]["2"]
    assert "quarantined" not in manifest and (manifest["size"], manifest["step"]) == NEXT
    assert _digests(folder) == digests, "the stored copy changed"
    assert read_quarantine(settings.paths.lake, "micro", *STORED) == quarantine

    lake, partitions = settings.paths.lake, [("micro", *STORED), ("micro", *NEXT)]
    outcome = check_not_quarantined(lake, partitions)
    assert list(outcome.failures) == ["micro|a|step1"] and outcome.checked == 2
    reason = outcome.failures["micro|a|step1"]
    assert reason.startswith(f"quarantined (an earlier copy stays in the lake): seed 2: {path.parent}")
    assert all(check(lake, partitions).passed for check in (check_kl_non_negative, check_manifests_complete))
    with pytest.raises(NonFiniteOutputs, match=f"micro\\|a\\|step1 is quarantined: seed 2: .*{what}"):
        pipeline.extract_checkpoint(settings, "micro", *STORED)

    path.write_bytes(original)  # the checkpoint is fixed: the rerun replaces the old copy and lifts the quarantine
    pipeline.extract_checkpoint(settings, "micro", *STORED)
    assert read_quarantine(settings.paths.lake, "micro", *STORED) is None
    assert check_not_quarantined(lake, partitions).passed


def test_garbage_weights_are_named(stored):
    settings, folder, digests = stored
    (settings.paths.suites / "micro" / "a-seed2" / "step2" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(SuiteUnavailable, match="a-seed2/step2"):
        _run(settings)
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

    monkeypatch.setattr("extract.sources.suites.hf_hub_download", not_found)
    suite = HubSuite("polypythia", ("14m",), (11,))
    with pytest.raises(SuiteUnavailable, match=message):
        suite.weights_folder(suite.checkpoint("14m", 11, 99))
