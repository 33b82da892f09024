import hashlib
import json
import threading
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from extract.engine.prefetch import Prefetcher
from extract.sources.checkpoint_reader import CheckpointUnreadable, read_checkpoint
from orchestration.defs.checkpoint_extraction import partitions_by_suite
from orchestration.materialize import contiguous_ranges


def test_one_read_gives_tensors_config_and_file_hash(micro_suite):
    folder = micro_suite.root / "a-seed1" / "step4"
    weights = read_checkpoint(folder)
    data = (folder / "model.safetensors").read_bytes()
    assert weights.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert weights.n_bytes == len(data)
    assert weights.config.hidden_size == 16
    expected = load_file(folder / "model.safetensors")
    assert weights.state_dict.keys() == expected.keys()
    assert all(torch.equal(weights.state_dict[k], expected[k]) for k in expected)


def test_sharded_checkpoints_are_read_whole(micro_suite, tmp_path):
    source = micro_suite.root / "a-seed1" / "step4"
    (tmp_path / "config.json").write_text((source / "config.json").read_text())
    tensors = load_file(source / "model.safetensors")
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in halves.items():
        save_file({k: tensors[k] for k in keys}, tmp_path / shard)
    weight_map = {k: shard for shard, keys in halves.items() for k in keys}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    weights = read_checkpoint(tmp_path)
    assert weights.state_dict.keys() == tensors.keys()
    assert weights.n_bytes == sum((tmp_path / shard).stat().st_size for shard in halves)


@pytest.mark.parametrize("damage, message", [("config", "no config.json"), ("weights", "no weights file")])
def test_incomplete_folders_are_named(micro_suite, tmp_path, damage, message):
    source = micro_suite.root / "a-seed1" / "step4"
    if damage == "weights":
        (tmp_path / "config.json").write_text((source / "config.json").read_text())
    with pytest.raises(CheckpointUnreadable, match=message):
        read_checkpoint(tmp_path, source="suite/a-seed9/step4")


def test_prefetcher_keeps_order_and_reads_ahead_within_its_depth():
    started, lock = [], threading.Lock()

    def read(item):
        with lock:
            started.append(item)
        time.sleep(0.01)
        return item

    seen = []
    for item in Prefetcher(range(6), read, depth=2):
        time.sleep(0.05)  # the consumer is slower than the reader
        with lock:
            # Never more than `depth` reads started beyond the one being consumed.
            assert len(started) <= item + 1 + 2
        seen.append(item)
    assert seen == list(range(6))
    assert started == list(range(6))


def test_prefetcher_passes_on_the_reader_error():
    def read(item):
        if item == 2:
            raise CheckpointUnreadable("checkpoint two is damaged")
        return item

    seen = []
    with pytest.raises(CheckpointUnreadable, match="two is damaged"):
        for item in Prefetcher(range(5), read, depth=1):
            seen.append(item)
    assert seen == [0, 1]


def test_extraction_runs_group_partitions():
    keys = ["mini|s|step0", "mini|s|step1", "other|l|step8", "mini|m|step0"]
    assert partitions_by_suite(keys) == {"mini": [("s", 0), ("s", 1), ("m", 0)], "other": [("l", 8)]}
    order = ["a", "b", "c", "d", "e", "f"]
    assert contiguous_ranges(order, {"a", "b", "d", "f"}) == [("a", "b"), ("d", "d"), ("f", "f")]
    assert contiguous_ranges(order, set()) == []
    assert contiguous_ranges(order, set(order)) == [("a", "f")]
