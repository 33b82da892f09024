import shutil
from types import SimpleNamespace

import pytest
import requests
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError, RevisionNotFoundError

from extract.sources.hub_repos import REPO_PATTERNS, repo_pattern
from extract.sources.suites import (
    PYTHIA_STEPS,
    CheckpointMissing,
    HubSuite,
    LocalSuite,
    MultiBertSuite,
    SuiteUnavailable,
    complete_steps,
    parse_partition_key,
    partition_key,
)


def test_polypythia_naming():
    suite = HubSuite("polypythia", ("14m", "410m"), (0, 1, 2))
    assert suite.repo_id("70m", 0) == "EleutherAI/pythia-70m"
    assert suite.repo_id("70m", 3) == "EleutherAI/pythia-70m-seed3"
    assert HubSuite.revision(512) == "step512"
    checkpoint = suite.checkpoint("410m", 2, 143000)
    assert checkpoint.source == "EleutherAI/pythia-410m-seed2@step143000"
    assert suite.partitions()[:2] == [("14m", 0), ("14m", 1)]


@pytest.mark.parametrize(
    "pattern, seed3, seed0",
    [
        ("data-seed", "EleutherAI/pythia-160m-data-seed3", "EleutherAI/pythia-160m"),
        ("weight-seed", "EleutherAI/pythia-160m-weight-seed3", "EleutherAI/pythia-160m"),
        # the default written out is the built-in: seed 0 is still the original
        ("EleutherAI/pythia-{size}-seed{seed}", "EleutherAI/pythia-160m-seed3", "EleutherAI/pythia-160m"),
        # any other pattern names seed 0 like every seed
        ("me/run-{size}-s{seed}", "me/run-160m-s3", "me/run-160m-s0"),
    ],
)
def test_repo_patterns_name_each_seed_and_seed_0(pattern, seed3, seed0):
    suite = HubSuite("variants", ("160m",), (0, 1, 2, 3), pattern=pattern)
    assert suite.repo_id("160m", 3) == seed3 and suite.repo_id("160m", 0) == seed0
    assert suite.checkpoint("160m", 3, 1000).source == f"{seed3}@step1000"


def test_unknown_repo_patterns_are_refused_by_name():
    assert set(REPO_PATTERNS) == {"polypythia", "data-seed", "weight-seed"}
    with pytest.raises(ValueError, match="'poly-pythia' is neither a built-in pattern"):
        repo_pattern("poly-pythia")
    with pytest.raises(ValueError, match=r"names \['step'\]"):
        repo_pattern("me/run-{size}-{seed}-{step}")


def test_complete_steps_wait_for_a_seed_until_it_has_gone_past_the_step():
    available = {1: {0, 1, 2, 4}, 2: {0, 1, 4}, 3: {0, 1, 2}}
    # step 2: seed 2 went on to 4 without it (missing for good); step 4: seed 3 may still write it
    assert complete_steps(available) == {0: [1, 2, 3], 1: [1, 2, 3], 2: [1, 3]}
    # a seed known never to have step 4 does not hold it back
    assert complete_steps(available, {(3, 4)}) == {0: [1, 2, 3], 1: [1, 2, 3], 2: [1, 3], 4: [1, 2]}
    # one seed alone is nothing to compare
    assert complete_steps({1: {0, 8}, 2: {0, 16}}) == {0: [1, 2]}


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


def test_final_steps_are_the_configured_last_checkpoints(micro_suite, micro_settings):
    """The step each size trains to (final surprisal is read there), whether extracted or not."""
    assert HubSuite("polypythia", ("14m",), (0, 1)).final_step("14m") == 143_000
    assert HubSuite("polypythia", ("14m",), (0, 1), steps=(0, 512, 64)).final_step("14m") == 512
    assert MultiBertSuite("multibert", (0, 1)).final_step("base") == 2_000_000
    assert micro_suite.final_step("a") == micro_settings.mini.steps == 8
    assert LocalSuite("open", micro_suite.root).final_step("a") is None


def test_local_suite_discovers_the_micro_suite(micro_suite, micro_settings):
    assert micro_suite.sizes() == ["a", "b"]
    assert micro_suite.seeds("a") == [1, 2, 3]
    assert micro_suite.steps("a") == [0, 1, 2, 4, 8]
    assert len(micro_suite.partitions()) == 10
    tokenizer = micro_suite.load_tokenizer()
    assert len(tokenizer) == micro_settings.mini.vocab_size


def test_local_suite_counts_a_step_once_every_seed_has_it_or_has_gone_past_it(micro_suite, tmp_path):
    copy = tmp_path / "suite"
    shutil.copytree(micro_suite.root, copy)
    shutil.rmtree(copy / "a-seed2" / "step4")  # seed 2 skipped step 4: it has step 8
    (copy / "a-seed3" / "step8" / "model.safetensors").unlink()  # a checkpoint still being written
    (copy / "b-seed1" / "notes").mkdir()
    suite = LocalSuite("copy", copy)
    assert suite.steps("a") == [0, 1, 2, 4]  # step 8 waits for seed 3
    assert suite.seeds_at("a", 4) == [1, 3]
    assert list(suite.missing_at("a", 4)) == [2] and "a-seed2/step4 does not exist" in suite.missing_at("a", 4)[2]
    assert suite.seeds_at("a", 8) == [1, 2] and suite.missing_at("a", 8) == {}, "seed 3 may still write step 8"
    assert suite.seed_steps("a", 2) == [0, 1, 2] and suite.seed_steps("a", 3) == [0, 1, 2, 4]
    assert suite.steps("b") == [0, 1, 2, 4, 8]
    assert suite.objective == "causal"


def test_local_suite_errors_name_the_folder(tmp_path):
    suite = LocalSuite("empty", tmp_path)
    assert suite.partitions() == []
    with pytest.raises(SuiteUnavailable, match="no tokenizer"):
        suite.load_tokenizer()
    with pytest.raises(SuiteUnavailable, match="s-seed1/step0"):
        suite.load_model(suite.checkpoint("s", 1, 0), torch.device("cpu"))


def _branches(monkeypatch, branches: dict[str, list[str]]) -> None:
    def list_repo_refs(repo):
        return SimpleNamespace(branches=[SimpleNamespace(name=name) for name in branches[repo]])

    monkeypatch.setattr("extract.sources.suites.list_repo_refs", list_repo_refs)


def test_hub_revisions_every_seed_has_or_went_past_are_published_steps(monkeypatch):
    _branches(
        monkeypatch,
        {
            "EleutherAI/pythia-14m-seed1": ["main", "step0", "step1", "step2", "step4", "step8", "step143000"],
            "EleutherAI/pythia-14m-seed2": ["main", "step0", "step1", "step4", "step143000", "not-a-step"],
            "EleutherAI/pythia-14m-seed3": ["main", "step0", "step1", "step2", "step4"],
        },
    )
    suite = HubSuite("polypythia", ("14m",), (1, 2, 3))
    # step2: seed 2 has step4 already, so it will not get step2; step8 and 143000: seed 3 may
    # still upload them
    assert suite.published_steps("14m") == [0, 1, 2, 4]


def test_polypythia_steps_without_a_seed_known_missing_go_on_with_the_others(monkeypatch):
    """EleutherAI/pythia issue 202: 410m-seed9 at step 40000, seed6 at 88000, seed2 at 111000."""
    suite = HubSuite("polypythia", ("410m",), tuple(range(10)))
    assert suite.seeds_at("410m", 40_000) == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert "issue 202" in suite.missing_at("410m", 40_000)[9]
    assert list(suite.missing_at("410m", 88_000)) == [6] and list(suite.missing_at("410m", 111_000)) == [2]
    assert suite.missing_at("410m", 39_000) == {} and suite.missing_at("70m", 40_000) == {}
    assert 40_000 in suite.steps("410m") and len(suite.steps("410m")) == 154
    assert {39_000, 41_000} <= set(suite.seed_steps("410m", 9)) and 40_000 not in suite.seed_steps("410m", 9)
    # a seed left out of the suite is not reported missing
    assert HubSuite("polypythia", ("410m",), (0, 1)).missing_at("410m", 40_000) == {}
    # two seeds, one missing: the step is no partition
    assert 40_000 not in HubSuite("polypythia", ("410m",), (0, 9)).steps("410m")
    # listed, seed 9's repository lacks step40000 but has later steps; nobody waits for it
    names = [f"step{step}" for step in (39_000, 40_000, 41_000)]
    _branches(
        monkeypatch,
        {"EleutherAI/pythia-410m": names, "EleutherAI/pythia-410m-seed9": [names[0], names[2]]},
    )
    assert HubSuite("polypythia", ("410m",), (0, 9)).published_steps("410m") == [39_000, 41_000]


def _http_error(kind, status=404):
    response = requests.Response()
    response.status_code = status
    return kind(f"{kind.__name__} (test)", response=response)


def test_a_revision_the_hub_does_not_have_is_a_missing_seed_not_a_failure(monkeypatch):
    """RevisionNotFoundError for one seed: that seed is missing at that step, remembered, and the
    step goes on with the others (when two remain)."""

    def download(repo, filename, revision):
        if repo.endswith("seed2"):
            raise _http_error(RevisionNotFoundError)
        raise AssertionError("only seed 2 is read here")

    monkeypatch.setattr("extract.sources.suites.hf_hub_download", download)
    suite = HubSuite("polypythia", ("14m",), (0, 1, 2))
    with pytest.raises(CheckpointMissing, match="EleutherAI/pythia-14m-seed2 has no revision step64"):
        suite.weights_folder(suite.checkpoint("14m", 2, 64))
    assert suite.seeds_at("14m", 64) == [0, 1] and 64 in suite.steps("14m")
    assert "no revision step64" in suite.missing_at("14m", 64)[2]
    assert suite.seeds_at("14m", 128) == [0, 1, 2]


def test_a_revision_without_weights_is_missing_but_offline_is_not(monkeypatch, tmp_path):
    """The Hub answering that no weights file exists at a revision (PolyPythia's gaps are of this
    kind) makes the seed missing; a file that is only not in the cache offline does not."""
    (tmp_path / "config.json").write_text("{}")
    weights_error = {}

    def download(repo, filename, revision):
        if filename == "config.json":
            return str(tmp_path / "config.json")
        raise weights_error["error"]

    monkeypatch.setattr("extract.sources.suites.hf_hub_download", download)
    suite = HubSuite("polypythia", ("410m",), (0, 1, 2))
    weights_error["error"] = _http_error(RemoteEntryNotFoundError)
    with pytest.raises(CheckpointMissing, match="pythia-410m-seed1 at revision step5000 has no weights file"):
        suite.weights_folder(suite.checkpoint("410m", 1, 5000))
    weights_error["error"] = LocalEntryNotFoundError("not in the cache")
    with pytest.raises(SuiteUnavailable, match="offline, or not in the local Hugging Face cache") as raised:
        suite.weights_folder(suite.checkpoint("410m", 2, 5000))
    assert not isinstance(raised.value, CheckpointMissing)
    assert suite.seeds_at("410m", 5000) == [0, 2]


def test_multibert_is_named_as_before():
    suite = MultiBertSuite("multibert", (0, 1))
    assert suite.checkpoint("base", 1, 40_000).source == "google/multiberts-seed_1-step_40k@main"
    assert suite.steps("base")[:3] == [0, 20_000, 40_000] and suite.missing_at("base", 0) == {}


def test_hub_revisions_offline_are_named(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SuiteUnavailable, match="cannot list the revisions of EleutherAI/pythia-14m-seed1"):
        HubSuite("polypythia", ("14m",), (1, 2)).published_steps("14m")
