import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPTNeoXForCausalLM

from extract.config import MiniSizeConfig, MiniSuiteConfig
from extract.sources.mini_trainer import (
    checkpoint_steps,
    data_order,
    encode_corpus,
    init_std,
    learning_rate,
    run_is_complete,
    train_run,
    train_tokenizer,
)


def test_checkpoint_steps_follow_polypythia():
    assert checkpoint_steps(512) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert checkpoint_steps(300) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_checkpoint_steps_add_every_multiple_of_every():
    """The mini suite's default: the log-spaced steps and every 50th, 21 in all (10 more)."""
    steps = checkpoint_steps(512, every=50)
    assert steps == [0, 1, 2, 4, 8, 16, 32, 50, 64, 100, 128, 150, 200, 250, 256, 300, 350, 400, 450, 500, 512]
    assert len(steps) - len(checkpoint_steps(512)) == 10
    assert checkpoint_steps(512, every=0) == checkpoint_steps(512)
    assert checkpoint_steps(100, every=50) == [0, 1, 2, 4, 8, 16, 32, 50, 64, 100]  # 100 once
    assert checkpoint_steps(8, every=50) == [0, 1, 2, 4, 8]  # the micro suite: none added


def test_every_is_configured_per_suite_and_checked():
    from extract.config import ConfigError, MiniSuiteConfig, parse_settings

    settings = parse_settings({"mini": {"every": 25}}, Path("/tmp/unused"))
    assert settings.mini.every == 25 and settings.mini_mlm.every == 0
    assert MiniSuiteConfig().every == 50
    with pytest.raises(ConfigError, match=r"mini.every must be an integer in \[0, 10000000\], got -1"):
        MiniSuiteConfig(every=-1)


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    suite = MiniSuiteConfig(steps=100, warmup_steps=10, learning_rate=1e-3)
    rates = [learning_rate(step, suite) for step in range(101)]
    assert rates[0] == pytest.approx(1e-4)
    assert rates[9] == pytest.approx(1e-3)
    assert rates[100] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))


def test_seeds_order_the_data_differently():
    assert not np.array_equal(data_order(1, 0, 100), data_order(2, 0, 100))
    assert not np.array_equal(data_order(1, 0, 100), data_order(1, 1, 100))
    assert np.array_equal(data_order(3, 0, 100), data_order(3, 0, 100))


def test_init_gives_pythia_like_logit_spread():
    assert init_std(512) == pytest.approx(0.02)
    assert init_std(32) * 32**0.5 == pytest.approx(0.02 * 512**0.5)


def test_a_run_saves_the_log_spaced_and_every_steps(tmp_path):
    texts = ["the cat sat on the mat and the dog sat on the log"] * 50
    tokenizer = train_tokenizer(texts, vocab_size=280)
    tokens = encode_corpus(tokenizer, texts)
    suite = MiniSuiteConfig(steps=12, every=3, batch_size=2, seq_len=8, warmup_steps=1)
    size = MiniSizeConfig("t", hidden_size=16, num_layers=1, num_heads=2)
    train_run(size, 1, suite, tokens, tokenizer, tmp_path / "t-seed1")
    saved = sorted(int(p.name.removeprefix("step")) for p in (tmp_path / "t-seed1").iterdir())
    assert saved == [0, 1, 2, 3, 4, 6, 8, 9, 12]
    assert run_is_complete(tmp_path / "t-seed1", suite)
    # a run saved on another schedule (here without steps 5 and 10) is incomplete: trained again,
    # as a mini suite trained before `every` existed is on the next `make demo`
    assert not run_is_complete(tmp_path / "t-seed1", dataclasses.replace(suite, every=5))


def test_a_run_is_reproducible_and_its_seed_matters(tmp_path):
    texts = ["the cat sat on the mat and the dog sat on the log"] * 50
    tokenizer = train_tokenizer(texts, vocab_size=280)
    tokens = encode_corpus(tokenizer, texts)
    suite = MiniSuiteConfig(steps=4, every=0, batch_size=2, seq_len=8, warmup_steps=1)
    size = MiniSizeConfig("t", hidden_size=16, num_layers=1, num_heads=2)
    for name, seed in (("t-seed1", 1), ("again-seed1", 1), ("t-seed2", 2)):
        train_run(size, seed, suite, tokens, tokenizer, tmp_path / name)
    assert sorted(p.name for p in (tmp_path / "t-seed1").iterdir()) == ["step0", "step1", "step2", "step4"]

    def weights(run, step):
        model = GPTNeoXForCausalLM.from_pretrained(tmp_path / run / f"step{step}")
        return torch.cat([p.flatten() for p in model.parameters()])

    assert torch.equal(weights("t-seed1", 4), weights("again-seed1", 4))
    assert not torch.equal(weights("t-seed1", 0), weights("t-seed2", 0))
    assert not torch.equal(weights("t-seed1", 0), weights("t-seed1", 4))
