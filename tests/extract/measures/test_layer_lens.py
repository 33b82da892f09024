"""Seed convergence layer by layer: the logit lens against known answers."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from extract.config import ConfigError, parse_settings
from extract.engine.skeleton import Skeleton, forward_precision
from extract.lake.tables import checkpoint_dir
from extract.pipeline import extract_checkpoints
from extract.sources.suites import open_suite


def test_the_lens_at_the_last_layer_is_the_models_output(micro_suite):
    checkpoint = micro_suite.checkpoint("b", 1, 8)
    weights = micro_suite.read_weights(checkpoint)
    skeleton = Skeleton(weights.config, torch.device("cpu"), forward_precision("float32"), False, "causal")
    skeleton.load(weights)
    ids = torch.arange(3, 40)[None]
    with torch.inference_mode():
        lens = skeleton.lens_states(ids, None, (0, skeleton.n_layers))
        last = skeleton.hidden_states(ids)
    assert torch.equal(lens[-1], last)
    assert not torch.allclose(lens[0], last)


def test_identity_layers_give_the_same_distribution_at_every_layer(micro_suite):
    """A model whose layers add nothing to the residual stream (their output projections zeroed)
    has one lens distribution at every depth: the embeddings' through the final norm."""
    checkpoint = micro_suite.checkpoint("b", 1, 8)
    weights = micro_suite.read_weights(checkpoint)
    config = weights.config.__class__.from_dict({**weights.config.to_dict(), "num_hidden_layers": 3})
    skeleton = Skeleton(config, torch.device("cpu"), forward_precision("float32"), False, "causal")
    with torch.no_grad():
        for name, parameter in skeleton.model.named_parameters():
            if name.endswith(
                ("attention.dense.weight", "attention.dense.bias", "dense_4h_to_h.weight", "dense_4h_to_h.bias")
            ):
                parameter.zero_()
    ids = torch.arange(3, 30)[None]
    with torch.inference_mode():
        lens = skeleton.lens_states(ids, None, (0, 1, 2, 3))
    for layer in range(1, 4):
        torch.testing.assert_close(lens[layer], lens[0], rtol=0, atol=1e-6)


def test_layer_tables_on_the_micro_suites(warehouse_copy):
    """The last layer's cross-seed KLs are the partition's pair_kl, its KL to the output is 0, and
    the masked suite has both tables too."""
    settings = warehouse_copy()
    list(extract_checkpoints(settings, "micro", [("b", 8)]))
    partition = checkpoint_dir(settings.paths.lake, "micro", "b", 8)
    layers = pq.read_table(partition / "layer_kl.parquet").to_pandas()
    to_final = pq.read_table(partition / "layer_final_kl.parquet").to_pandas()
    pair_kl = pq.read_table(partition / "pair_kl.parquet").to_pandas()
    n_layers = 1
    assert sorted(layers.layer.unique()) == [0, n_layers] and (layers.n_layers == n_layers).all()
    last = layers[layers.layer == n_layers].drop(columns=["layer", "n_layers"]).reset_index(drop=True)
    np.testing.assert_allclose(last.kl, pair_kl.kl, rtol=1e-5, atol=1e-7)
    assert (last[["seed_a", "seed_b", "position"]].values == pair_kl[["seed_a", "seed_b", "position"]].values).all()
    assert np.abs(to_final[to_final.layer == n_layers].kl).max() < 1e-5
    assert to_final[to_final.layer == 0].kl.mean() > 0.01  # the embeddings alone predict something else

    masked = settings.mini_mlm.name
    suite = open_suite(settings.suite(masked))
    size = suite.sizes()[0]
    list(extract_checkpoints(settings, masked, [(size, suite.steps(size)[-1])]))
    partition = checkpoint_dir(settings.paths.lake, masked, size, suite.steps(size)[-1])
    masked_layers = pq.read_table(partition / "layer_kl.parquet").to_pandas()
    masked_pairs = pq.read_table(partition / "pair_kl.parquet").to_pandas()
    last = masked_layers[masked_layers.layer == masked_layers.n_layers]
    np.testing.assert_allclose(last.kl.to_numpy(), masked_pairs.kl.to_numpy(), rtol=1e-5, atol=1e-7)


def test_a_layer_past_the_models_depth_is_named(warehouse_copy, micro_config_path):
    from extract.config import load_settings
    from extract.measures.base import ExtractionError

    settings = warehouse_copy()
    text = micro_config_path.read_text() + "\n[layers]\nlayers = [0, 5]\n"
    config = settings.paths.root / "deep.toml"
    config.write_text(text)
    deep = load_settings(config, settings.paths.root)
    with pytest.raises(ExtractionError, match=r"has 1 layers, but \[layers\] layers asks for layer 5"):
        list(extract_checkpoints(deep, "micro", [("a", 8)]))
    assert not checkpoint_dir(deep.paths.lake, "micro", "a", 8).exists()


@pytest.mark.parametrize("layers", [[-1], [1, 1]])
def test_bad_layers_are_named(layers, tmp_path):
    with pytest.raises(ConfigError, match="layers.layers"):
        parse_settings({"layers": {"layers": layers}}, tmp_path)
