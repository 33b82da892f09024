import shutil

import pytest
import torch

from extract.sources.suites import (
    PYTHIA_STEPS,
    HubSuite,
    LocalSuite,
    SuiteUnavailable,
    parse_partition_key,
    partition_key,
)


def test_polypythia_naming():
    assert HubSuite.repo_id("70m", 0) == "EleutherAI/pythia-70m"
    assert HubSuite.repo_id("70m", 3) == "EleutherAI/pythia-70m-seed3"
    assert HubSuite.revision(512) == "step512"
    suite = HubSuite("polypythia", ("14m", "410m"), (0, 1, 2))
    checkpoint = suite.checkpoint("410m", 2, 143000)
    assert checkpoint.source == "EleutherAI/pythia-410m-seed2@step143000"
    assert suite.partitions()[:2] == [("14m", 0), ("14m", 1)]


def test_polypythia_has_154_checkpoints():
    assert len(PYTHIA_STEPS) == 154
    assert PYTHIA_STEPS[:12] == (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
    assert PYTHIA_STEPS[-1] == 143000


def test_hub_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    suite = HubSuite("polypythia", ("14m",), (0, 1))
    with pytest.raises(SuiteUnavailable, match=r"EleutherAI/pythia-14m-seed1 at revision step64"):
        suite.load_model(suite.checkpoint("14m", 1, 64), torch.device("cpu"))
    with pytest.raises(SuiteUnavailable, match="tokenizer of EleutherAI/pythia-14m"):
        suite.load_tokenizer()


def test_partition_keys_round_trip():
    key = partition_key("mini", "m", 64)
    assert key == "mini|m|step64"
    assert parse_partition_key(key) == ("mini", "m", 64)
    with pytest.raises(ValueError, match="suite\\|size\\|stepN"):
        parse_partition_key("mini/m/64")


def test_local_suite_discovers_the_micro_suite(micro_suite, micro_settings):
    assert micro_suite.sizes() == ["a", "b"]
    assert micro_suite.seeds("a") == [1, 2, 3]
    assert micro_suite.steps("a") == [0, 1, 2, 4, 8]
    assert len(micro_suite.partitions()) == 10
    tokenizer = micro_suite.load_tokenizer()
    assert len(tokenizer) == micro_settings.mini.vocab_size


def test_local_suite_counts_a_step_only_when_every_seed_has_it(micro_suite, tmp_path):
    copy = tmp_path / "suite"
    shutil.copytree(micro_suite.root, copy)
    shutil.rmtree(copy / "a-seed2" / "step4")
    (copy / "a-seed3" / "step8" / "model.safetensors").unlink()  # a checkpoint still being written
    (copy / "b-seed1" / "notes").mkdir()
    suite = LocalSuite("copy", copy)
    assert suite.steps("a") == [0, 1, 2]
    assert suite.steps("b") == [0, 1, 2, 4, 8]


def test_local_suite_errors_name_the_folder(tmp_path):
    suite = LocalSuite("empty", tmp_path)
    assert suite.partitions() == []
    with pytest.raises(SuiteUnavailable, match="no tokenizer"):
        suite.load_tokenizer()
    with pytest.raises(SuiteUnavailable, match="s-seed1/step0"):
        suite.load_model(suite.checkpoint("s", 1, 0), torch.device("cpu"))


def test_hub_revisions_every_seed_has_are_published_steps(monkeypatch):
    from types import SimpleNamespace

    branches = {
        "EleutherAI/pythia-14m-seed1": ["main", "step0", "step1", "step2", "step143000"],
        "EleutherAI/pythia-14m-seed2": ["main", "step0", "step1", "step143000", "not-a-step"],
    }

    def list_repo_refs(repo):
        return SimpleNamespace(branches=[SimpleNamespace(name=name) for name in branches[repo]])

    monkeypatch.setattr("extract.sources.suites.list_repo_refs", list_repo_refs)
    suite = HubSuite("polypythia", ("14m",), (1, 2))
    assert suite.published_steps("14m") == [0, 1, 143000]  # step2 only for seed 1: not yet a checkpoint


def test_hub_revisions_offline_are_named(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SuiteUnavailable, match="cannot list the revisions of EleutherAI/pythia-14m-seed1"):
        HubSuite("polypythia", ("14m",), (1, 2)).published_steps("14m")
