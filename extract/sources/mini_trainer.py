"""Trains the mini suites: small models, several sizes x seeds, on CPU.

The causal suite (GPT-NeoX) stands in for PolyPythia and the masked suite (BERT) for MultiBERT
where no hub can be reached, so they copy what matters for convergence: one tokenizer shared by
every run, a seed that changes the initialisation, the order of the training data and (masked
suite) which tokens are masked, and checkpoints at steps 0, 1, 2, 4, ... (plus every `every`
steps, for the fingerprint regimes' fixed step gap) saved with `save_pretrained` in the layout
`<size>-seed<n>/step<N>/` that `LocalSuite` reads.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from extract.config import MiniSizeConfig, MiniSuiteConfig
from extract.lake.atomic_writes import replaced_atomically
from extract.sources.suites import TOKENIZER_DIR

EOS = "<|endoftext|>"
# The masked suite's special tokens, BERT's, in BERT's order ([PAD] is id 0).
PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"


def checkpoint_steps(last_step: int, every: int = 0) -> list[int]:
    """PolyPythia's log-spaced schedule: 0, 1, 2, 4, ... and always the last step; with `every`,
    also every multiple of it up to the last step (McEntire 2026 compares checkpoints a fixed
    number of steps apart, which a log-spaced schedule never has twice)."""
    steps = {0, last_step}
    power = 1
    while power < last_step:
        steps.add(power)
        power *= 2
    if every:
        steps.update(range(every, last_step + 1, every))
    return sorted(steps)


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer like GPT-NeoX's, with `<|endoftext|>` as id 0."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # trim_offsets=False keeps a token's leading space inside its character span.
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS)


def train_wordpiece_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A cased WordPiece tokenizer like BERT's: [CLS] text [SEP], with [MASK] for masked positions."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, UNK, CLS, SEP, MASK], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, tokenizer.token_to_id(CLS)), (SEP, tokenizer.token_to_id(SEP))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, unk_token=UNK, cls_token=CLS, sep_token=SEP, mask_token=MASK
    )


def encode_corpus(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str]) -> np.ndarray:
    """Every text's token ids, each text followed by EOS ([SEP] for BERT), as one stream."""
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    ids: list[int] = []
    for encoding in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids.extend(encoding)
        ids.append(eos)
    return np.asarray(ids, dtype=np.int32)


# Pythia-70m: width 512, weights initialised with standard deviation 0.02.
PYTHIA_WIDTH, PYTHIA_INIT_STD = 512, 0.02


def init_std(hidden_size: int) -> float:
    """Initial weight scale that gives the logits the spread they have in Pythia-70m at step 0.

    A layer-normed hidden state times N(0, s^2) weights gives logits of std s * sqrt(width).
    With transformers' default s = 0.02 a 32-wide model starts with logits 4x flatter than
    Pythia's, so its seeds start almost identical and the early convergence phase (seeds that
    disagree at random initialisation converging on the unigram distribution) cannot show.
    """
    return PYTHIA_INIT_STD * math.sqrt(PYTHIA_WIDTH / hidden_size)


def model_config(
    size: MiniSizeConfig, suite: MiniSuiteConfig, tokenizer: PreTrainedTokenizerFast
) -> GPTNeoXConfig | BertConfig:
    shape = {
        "initializer_range": init_std(size.hidden_size),
        "vocab_size": len(tokenizer),
        "hidden_size": size.hidden_size,
        "num_hidden_layers": size.num_layers,
        "num_attention_heads": size.num_heads,
        "intermediate_size": 4 * size.hidden_size,
    }
    if suite.objective == "masked":
        return BertConfig(**shape, max_position_embeddings=max(suite.seq_len, 512), pad_token_id=tokenizer.pad_token_id)
    return GPTNeoXConfig(
        **shape,
        max_position_embeddings=max(suite.seq_len, 2048),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )


def learning_rate(step: int, suite: MiniSuiteConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth, as Pythia's schedule."""
    if step < suite.warmup_steps:
        return suite.learning_rate * (step + 1) / suite.warmup_steps
    progress = (step - suite.warmup_steps) / max(1, suite.steps - suite.warmup_steps)
    return suite.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def data_order(seed: int, epoch: int, n_blocks: int) -> np.ndarray:
    """The order in which a run sees the training blocks: the seed's second job, after init."""
    return np.random.default_rng([seed, epoch]).permutation(n_blocks)


def new_model(size: MiniSizeConfig, suite: MiniSuiteConfig, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    config = model_config(size, suite, tokenizer)
    return BertForMaskedLM(config) if suite.objective == "masked" else GPTNeoXForCausalLM(config)


def training_blocks(tokens: np.ndarray, suite: MiniSuiteConfig, tokenizer: PreTrainedTokenizerFast) -> torch.Tensor:
    """The token stream cut into [n_blocks, seq_len] training inputs ([CLS] ... [SEP] for BERT)."""
    masked = suite.objective == "masked"
    length = suite.seq_len - 2 if masked else suite.seq_len
    n_blocks = (len(tokens) - 1) // length
    if n_blocks < suite.batch_size:
        raise ValueError(
            f"training text has {len(tokens)} tokens, fewer than one batch of {suite.batch_size} x {suite.seq_len}"
        )
    blocks = torch.from_numpy(tokens[: n_blocks * length].astype(np.int64)).view(n_blocks, length)
    if masked:
        cls = torch.full((n_blocks, 1), tokenizer.cls_token_id)
        sep = torch.full((n_blocks, 1), tokenizer.sep_token_id)
        blocks = torch.cat([cls, blocks, sep], dim=1)
    return blocks


def _save_atomically(model: PreTrainedModel, target: Path) -> None:
    # A reader never sees half a checkpoint.
    with replaced_atomically(target) as staging:
        model.save_pretrained(staging)


def train_run(
    size: MiniSizeConfig,
    seed: int,
    suite: MiniSuiteConfig,
    tokens: np.ndarray,
    tokenizer: PreTrainedTokenizerFast,
    run_dir: Path,
) -> None:
    """Trains one (size, seed) and saves its checkpoints; the seed sets init, data order and masking."""
    torch.manual_seed(seed)
    model = new_model(size, suite, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=suite.learning_rate, betas=(0.9, 0.95), weight_decay=0.01)
    blocks = training_blocks(tokens, suite, tokenizer)
    n_blocks = len(blocks)
    # BERT's masking (of the non-special tokens, 80 % [MASK], 10 % random, 10 % kept), from
    # transformers rather than by hand; its own generator, seeded by the run's seed.
    masker = (
        DataCollatorForLanguageModeling(tokenizer, mlm_probability=suite.mask_probability, seed=seed)
        if suite.objective == "masked"
        else None
    )
    epoch = 0
    order = data_order(seed, epoch, n_blocks)

    run_dir.mkdir(parents=True, exist_ok=True)
    save_at = set(checkpoint_steps(suite.steps, suite.every))
    cursor = 0
    for step in range(suite.steps + 1):
        if step in save_at:
            _save_atomically(model, run_dir / f"step{step}")
        if step == suite.steps:
            break
        if cursor + suite.batch_size > n_blocks:
            epoch += 1
            order = data_order(seed, epoch, n_blocks)
            cursor = 0
        batch = blocks[order[cursor : cursor + suite.batch_size]]
        cursor += suite.batch_size
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, suite)
        if masker is None:
            loss = model(input_ids=batch, labels=batch).loss
        else:
            special = (batch == tokenizer.cls_token_id) | (batch == tokenizer.sep_token_id)
            inputs, labels = masker.torch_mask_tokens(batch.clone(), special_tokens_mask=special)
            loss = model(input_ids=inputs, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()


def run_is_complete(run_dir: Path, suite: MiniSuiteConfig) -> bool:
    steps = checkpoint_steps(suite.steps, suite.every)
    return all((run_dir / f"step{step}" / "config.json").exists() for step in steps)


def train_suite(
    suite: MiniSuiteConfig,
    train_texts: Sequence[str],
    out_dir: Path,
    log: Callable[[str], None] = print,
) -> Path:
    """Trains the tokenizer (byte-level BPE, or WordPiece for a masked suite), then every
    (size, seed); runs already complete are kept.

    Returns the suite's directory. A run cut short is trained again from step 0, since its
    optimizer state is not saved.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = out_dir / TOKENIZER_DIR
    if (tokenizer_dir / "tokenizer.json").exists():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    else:
        train = train_wordpiece_tokenizer if suite.objective == "masked" else train_tokenizer
        tokenizer = train(train_texts, suite.vocab_size)
        staging = Path(tempfile.mkdtemp(prefix=".tokenizer.", dir=out_dir))
        tokenizer.save_pretrained(staging)
        os.replace(staging, tokenizer_dir)
    tokens = encode_corpus(tokenizer, train_texts)
    log(f"{suite.name} suite: {len(tokens):,} training tokens, vocabulary {len(tokenizer)}")

    for size in suite.sizes:
        for seed in suite.seeds:
            run_dir = out_dir / f"{size.name}-seed{seed}"
            if run_is_complete(run_dir, suite):
                continue
            started = time.perf_counter()
            train_run(size, seed, suite, tokens, tokenizer, run_dir)
            log(f"{suite.name} suite: trained {run_dir.name} in {time.perf_counter() - started:.1f} s")
    return out_dir
