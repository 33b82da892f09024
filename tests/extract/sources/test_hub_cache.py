"""The hub path for real, offline: a Hugging Face cache laid out as the hub client writes it,
filled from the micro suite's checkpoints, read through `HubSuite` with the real
`huggingface_hub` calls (HF_HUB_OFFLINE); and the cache budget, which deletes revisions the lake
already holds through the client's own cache API.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import huggingface_hub.constants
import pyarrow.parquet as pq
import pytest
import requests
from huggingface_hub.errors import RevisionNotFoundError

from extract.config import load_settings
from extract.lake.tables import checkpoint_dir
from extract.pipeline import extract_checkpoints
from extract.sources import suites as suites_module
from extract.sources.hub_cache import evict_stored_revisions, repos_size
from extract.sources.suites import HubSuite, SuiteUnavailable, open_suite
from tests.helpers.hub_cache import cache_local_suite, cache_revision, cached_revisions, repo_folder
from tests.helpers.micro import MICRO_CONFIG

# The hub suite has every step of the micro suite (so that the weight statistics measure from the
# same previous and step-0 checkpoints); two of them are extracted.
SIZE, SEEDS, STEPS = "a", (1, 2, 3), (0, 1, 2, 4, 8)
EXTRACTED = (4, 8)
PARTITIONS = [(SIZE, step) for step in EXTRACTED]
HUB = "pythia"  # the micro suite's checkpoints as PolyPythia-named repositories


def repo_id(size: str, seed: int) -> str:
    return f"EleutherAI/pythia-{size}-seed{seed}"


@pytest.fixture
def hub_warehouse(micro_settings, tmp_path, monkeypatch):
    """make(**hub_keys) -> settings of a warehouse with the micro suite (local) and the hub suite
    `pythia` (size a, seeds 1-3, the micro suite's steps, plus `hub_keys`) over a Hugging Face cache holding
    the micro suite's checkpoints; the Hub client is offline and reads that cache only. Both
    suites' input tables are the micro suite's (one tokenizer, so the same tables)."""
    cache = tmp_path / "hf" / "hub"
    cache_local_suite(cache, micro_settings.paths.suites / "micro", repo_id, SIZE, SEEDS, STEPS)
    # huggingface_hub reads its environment once, at import: the constants are what it uses.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def make(**hub_keys):
        root = tmp_path / "warehouse"
        shutil.copytree(micro_settings.paths.suites / "micro", root / "suites" / "micro")
        for folder in micro_settings.paths.lake.iterdir():
            if folder.name == "eval_documents":
                shutil.copytree(folder, root / "lake" / folder.name)
            elif (folder / "suite=micro").is_dir():
                for suite in ("micro", HUB):
                    shutil.copytree(folder / "suite=micro", root / "lake" / folder.name / f"suite={suite}")
        keys = "".join(f"{key} = {value!r}\n" for key, value in hub_keys.items())
        config = tmp_path / "seedconv.toml"
        config.write_text(
            MICRO_CONFIG
            + f'\n[[suites]]\nname = "{HUB}"\nkind = "hub"\nsizes = ["{SIZE}"]\nseeds = {list(SEEDS)}\n'
            + f"steps = {list(STEPS)}\n{keys}"
        )
        return load_settings(config, root), cache

    return make


def _tables(partition: Path) -> dict:
    return {path.stem: pq.read_table(path) for path in sorted(partition.glob("*.parquet"))}


def test_the_hub_path_offline_extracts_what_the_same_checkpoints_give_read_locally(hub_warehouse, tmp_path):
    """Partitions extracted through the hub suite (hf_hub_download of `step<N>` revisions,
    AutoTokenizer.from_pretrained of the first seed's repository, all from the cache) hold
    exactly the tables of the same checkpoints read as a local suite: every table, every value."""
    settings, cache = hub_warehouse()
    suite = open_suite(settings.suite(HUB))
    assert isinstance(suite, HubSuite)
    folder = suite.weights_folder(suite.checkpoint(SIZE, 2, 8))
    assert folder.parent == repo_folder(cache, repo_id(SIZE, 2)) / "snapshots"
    assert (folder / "model.safetensors").is_symlink()

    hub = list(extract_checkpoints(settings, HUB, PARTITIONS))
    local = list(extract_checkpoints(settings, "micro", PARTITIONS, output_lake=tmp_path / "local"))
    for (size, step), from_hub, from_disk in zip(PARTITIONS, hub, local, strict=True):
        assert [c["source"] for c in from_hub["checkpoints"]] == [f"{repo_id(size, s)}@step{step}" for s in SEEDS]
        assert [c["weights"] for c in from_hub["checkpoints"]] == [c["weights"] for c in from_disk["checkpoints"]]
        assert from_hub["seeds"] == from_disk["seeds"] == list(SEEDS) and from_hub["seeds_missing"] == []
        assert from_hub["rows"] == from_disk["rows"] and from_hub["eval_set_hash"] == from_disk["eval_set_hash"]
        hub_tables = _tables(checkpoint_dir(settings.paths.lake, HUB, size, step))
        disk_tables = _tables(checkpoint_dir(tmp_path / "local", "micro", size, step))
        assert set(hub_tables) == set(disk_tables) == set(from_hub["rows"])
        for name, table in hub_tables.items():
            assert table.equals(disk_tables[name]), f"{name} at step {step}"
    # Without a cache budget nothing is deleted.
    assert all(cached_revisions(cache, repo_id(SIZE, s)) >= {"step4", "step8"} for s in SEEDS)


def test_a_revision_the_hub_does_not_have_leaves_the_step_to_the_other_seeds(hub_warehouse, monkeypatch):
    """The Hub answers RevisionNotFoundError for seed 3 at step 8 (as for PolyPythia's missing
    checkpoints): the partition is extracted with seeds 1 and 2, from the cache as before, and
    its manifest names seed 3 and the Hub's answer."""
    settings, _ = hub_warehouse()
    real_download = suites_module.hf_hub_download

    def download(repo_id, filename, revision=None, **kwargs):
        if repo_id.endswith("seed3") and revision == "step8":
            response = requests.Response()
            response.status_code = 404
            raise RevisionNotFoundError("Revision Not Found", response=response)
        return real_download(repo_id, filename, revision=revision, **kwargs)

    monkeypatch.setattr(suites_module, "hf_hub_download", download)
    (manifest,) = extract_checkpoints(settings, HUB, [(SIZE, 8)])
    assert (manifest["seeds"], manifest["seeds_missing"], manifest["n_pairs"]) == ([1, 2], [3], 2)
    (missing,) = manifest["missing_checkpoints"]
    assert missing["source"] == f"{repo_id(SIZE, 3)}@step8" and "has no revision step8" in missing["reason"]
    pair_kl = pq.read_table(checkpoint_dir(settings.paths.lake, HUB, SIZE, 8) / "pair_kl.parquet")
    assert set(pair_kl.column("seed_a").to_pylist()) == {1, 2}


def test_over_budget_stored_revisions_are_deleted_and_a_reextraction_needs_them_again(hub_warehouse, monkeypatch):
    """With a budget (1 byte here: always over), each committed partition's revisions are deleted
    through scan_cache_dir().delete_revisions(), never those of the partition still to come, and
    the tokenizer's `main` stays. A re-extraction of an evicted partition needs its revisions
    again: offline it stops with SuiteUnavailable naming repository and revision (online the
    client would download them; this test cannot reach the Hub, so laying the revisions out again
    stands in for that download), leaves the stored partition as it was, and once they are back
    gives the same rows."""
    settings, cache = hub_warehouse(cache_budget_gb=1e-9)
    evicted = []
    trim = HubSuite.trim_cache

    def recorded(self, stored, keep):
        deleted = trim(self, stored, keep)
        evicted.append(sorted(deleted))
        return deleted

    monkeypatch.setattr(HubSuite, "trim_cache", recorded)
    list(extract_checkpoints(settings, HUB, PARTITIONS))
    assert evicted == [[f"{repo_id(SIZE, s)}@step{step}" for s in SEEDS] for step in EXTRACTED]
    # steps 0-2, read for the weight statistics but not extracted, are not the lake's: they stay
    assert cached_revisions(cache, repo_id(SIZE, 1)) == {"main", "step0", "step1", "step2"}
    assert all(cached_revisions(cache, repo_id(SIZE, s)) == {"step0", "step1", "step2"} for s in SEEDS[1:])
    blobs = {path.name for path in cache.rglob("blobs/*")}
    for seed in SEEDS:
        for step in STEPS:
            weights = settings.paths.suites / "micro" / f"{SIZE}-seed{seed}" / f"step{step}" / "model.safetensors"
            assert (hashlib.sha256(weights.read_bytes()).hexdigest() in blobs) == (step not in EXTRACTED)

    partition = checkpoint_dir(settings.paths.lake, HUB, SIZE, 4)
    stored = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(partition.iterdir())}
    with pytest.raises(SuiteUnavailable, match=rf"{repo_id(SIZE, 1)} at revision step4 .*not in the local"):
        list(extract_checkpoints(settings, HUB, [(SIZE, 4)]))
    assert {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(partition.iterdir())} == stored

    before = pq.read_table(partition / "pair_kl.parquet")
    cache_local_suite(cache, settings.paths.suites / "micro", repo_id, SIZE, SEEDS, (4,))
    (manifest,) = extract_checkpoints(settings, HUB, [(SIZE, 4)])
    assert manifest["seeds"] == list(SEEDS)
    assert pq.read_table(partition / "pair_kl.parquet").equals(before)


def test_eviction_takes_the_oldest_stored_revisions_until_under_budget(tmp_path):
    """Of a suite's cached revisions, only those named evictable go, oldest first, and only
    until its repositories are within the budget; another repository is neither counted nor
    touched, and a blob another revision still links stays."""
    cache = tmp_path / "hub"
    files = tmp_path / "files"
    files.mkdir()
    (files / "config.json").write_text("{}")
    repo, other = "org/run-seed1", "org/someone-else"
    for index, step in enumerate((1, 2, 3)):
        (files / f"w{step}").write_bytes(bytes([step]) * 1000)
        cache_revision(cache, repo, f"step{step}", {"config.json": files / "config.json", "w.bin": files / f"w{step}"})
        for blob in (repo_folder(cache, repo) / "blobs").iterdir():
            # downloaded in step order; the shared config.json before any of them
            if blob.stat().st_size == 1000 and blob.read_bytes()[:1] == bytes([step]):
                os.utime(blob, (1_000_000 + index, 1_000_000 + index))
            elif blob.stat().st_size == 2:
                os.utime(blob, (1, 1))
    cache_revision(cache, other, "main", {"w.bin": files / "w1"})
    held = repos_size([repo], cache)
    assert held == 3002 and repos_size([repo, other], cache) == 4002

    evictable = {f"{repo}@step1", f"{repo}@step2", f"{other}@main"}
    assert evict_stored_revisions([repo], evictable, budget_bytes=held, cache_dir=cache) == []
    # over by a little: the oldest stored revision alone
    assert evict_stored_revisions([repo], evictable, budget_bytes=2500, cache_dir=cache) == [f"{repo}@step1"]
    assert cached_revisions(cache, repo) == {"step2", "step3"}
    # nothing fits: every stored revision goes, step 3 (still to be extracted) stays over budget
    assert evict_stored_revisions([repo], evictable, budget_bytes=0, cache_dir=cache) == [f"{repo}@step2"]
    assert cached_revisions(cache, repo) == {"step3"} and cached_revisions(cache, other) == {"main"}
    assert (repo_folder(cache, repo) / "snapshots").is_dir() and repos_size([repo], cache) == 1002
    assert evict_stored_revisions([repo], evictable, budget_bytes=0, cache_dir=tmp_path / "no-cache") == []
