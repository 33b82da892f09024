"""The micro suite's settings: the mini suites' code with tiny settings (seconds to train)."""

from __future__ import annotations

MICRO_CONFIG = """
[eval]
n_tokens = 300
window = 64
top_k = 8
batch_windows = 2

[extraction]
compile = false  # one test compiles (test_extraction.py); the rest need not wait for it

[icl]
short_context = 4
long_context = 16
target_position = 20
max_sequences = 6
batch_sequences = 4

[fingerprint]
corpus_probes = 4
arithmetic_probes = 2
factual_probes = 2
random_probes = 2
max_tokens = 16
batch_probes = 4

[loglik]
n_texts = 24
max_tokens = 24
batch_texts = 8

[weights]
sketch_dim = 256

[mini]
name = "micro"
seeds = [1, 2, 3]
steps = 8
batch_size = 4
seq_len = 32
vocab_size = 384
warmup_steps = 2
learning_rate = 1e-2

[mini.sizes.a]
hidden_size = 16
num_layers = 1
num_heads = 2

[mini.sizes.b]
hidden_size = 32
num_layers = 1
num_heads = 2

[blimp]
pairs_per_paradigm = 2
batch_sentences = 32

[mini_mlm]
name = "micro-mlm"
seeds = [1, 2, 3]
steps = 8
batch_size = 4
seq_len = 32
vocab_size = 384
warmup_steps = 2
learning_rate = 1e-2

[mini_mlm.sizes.a]
hidden_size = 16
num_layers = 1
num_heads = 2
"""
