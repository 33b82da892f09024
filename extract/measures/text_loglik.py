"""Log-likelihood vectors (Oyama et al. 2025; Kishino et al. 2026): each model's log-probability of a
fixed set of texts.

The texts are the suite's `loglik_texts` (extract/inputs/loglik_texts.py).
A model's log-likelihood of a text is log p(x) = sum_t log p(x_t | x_<t) in nats, with the text
fed behind the BOS token (GPT-NeoX's <|endoftext|>), as the evaluation windows are: every token of
the text, the first included, is scored, and every model of a suite is treated the same.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyarrow as pa
import torch

from extract.inputs.fingerprint_probes import table_hash
from extract.inputs.loglik_texts import LOGLIK_TEXTS, TextBatch, loglik_texts_table, text_batch
from extract.lake.tables import PARTITION, LakeTable
from extract.measures.base import Measure, NonFiniteOutputs, SeedModel, SuiteContext

LOGLIK_SCHEMA = pa.schema(
    [("seed", pa.int32()), ("text_id", pa.int32()), ("logprob", pa.float64()), ("n_tokens", pa.int32())]
)


class TokenScorer(Protocol):
    """A causal LM as the text measures use it: its body, then log p(target) from its states."""

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, T] token ids -> [B, T, H] last hidden states."""

    def target_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """[M, H] hidden states and [M] targets -> [M] fp32 log p(target), nats."""


def text_logprobs(model: TokenScorer, batch: TextBatch, batch_size: int, device: torch.device) -> np.ndarray:
    """log p(text) per text, nats, float64, from each token's log-probability given its prefix.

    The body runs batch by batch; the hidden states of the real tokens only (not the padding)
    are kept, and unembedded together afterwards in chunks of a fixed shape
    (SeedModel.target_logprobs): no batch's full distributions are ever kept.
    """
    # The batches are cut outside inference mode, as every other input of the body is: a compiled
    # body guards on that too, and inputs of both kinds would compile it twice per shape.
    batches = list(batch.batches(batch_size))
    hidden, targets, owners = [], [], []
    with torch.inference_mode():
        for rows, input_ids, batch_targets, mask in batches:
            states = model.hidden_states(input_ids.to(device))
            mask = mask.to(device)
            hidden.append(states[mask])
            targets.append(batch_targets.to(device)[mask])
            owners.append(rows.to(device)[:, None].expand_as(mask)[mask])
        per_token = model.target_logprobs(torch.cat(hidden), torch.cat(targets))
        out = torch.zeros(len(batch.input_ids), dtype=torch.float64, device=device)
        out.index_add_(0, torch.cat(owners), per_token.double())
    return out.cpu().numpy()


class HuggingFaceScorer:
    """A whole Hugging Face causal LM as a TokenScorer (an independent reference for tests): its
    own body and output embedding, and the fp32 log-softmax of the logits."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.base_model(input_ids=input_ids).last_hidden_state

    def target_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(self.model.get_output_embeddings()(hidden).float(), dim=-1)
        return log_p.gather(-1, targets[:, None])[:, 0]


def loglik_table(per_seed: dict[int, np.ndarray], n_tokens: np.ndarray) -> pa.Table:
    """Rows ordered by (seed, text_id)."""
    seeds = sorted(per_seed)
    n = len(n_tokens)
    return pa.table(
        {
            "seed": np.repeat(np.array(seeds, dtype=np.int32), n),
            "text_id": np.tile(np.arange(n, dtype=np.int32), len(seeds)),
            "logprob": np.concatenate([per_seed[s] for s in seeds]).astype(np.float64),
            "n_tokens": np.tile(n_tokens.astype(np.int32), len(seeds)),
        },
        schema=LOGLIK_SCHEMA,
    )


LOGLIK = LakeTable(
    "loglik",
    LOGLIK_SCHEMA,
    PARTITION,
    "Per seed and text: log-probability of the text (the log-likelihood vector).",
    objectives=("causal",),  # a masked LM gives no left-to-right probability of a text
)


class LoglikVectors(Measure):
    """Each seed's log-likelihood of every text of the suite's set (Oyama et al. 2025)."""

    tables = (LOGLIK,)
    inputs = (LOGLIK_TEXTS,)
    phase = "loglik"

    def __init__(self, texts: pa.Table, batch: TextBatch, batch_texts: int):
        self.texts = texts
        self.batch = batch
        self.batch_texts = batch_texts

    @classmethod
    def build_inputs(cls, settings, tokenizer, heldout) -> dict[str, pa.Table]:
        return {LOGLIK_TEXTS.name: loglik_texts_table(heldout, tokenizer, settings.loglik)}

    @classmethod
    def for_suite(cls, context: SuiteContext) -> LoglikVectors:
        texts = context.read(LOGLIK_TEXTS)
        return cls(texts, text_batch(texts, context.tokenizer, context.bos), context.settings.loglik.batch_texts)

    def measure_seed(self, model: SeedModel) -> np.ndarray:
        loglik = text_logprobs(model, self.batch, self.batch_texts, model.device)
        if not np.isfinite(loglik).all():
            raise NonFiniteOutputs(f"{model.checkpoint.source}: the model gives NaN or infinite log-likelihoods")
        return loglik

    def partition_tables(self, per_seed: dict) -> dict[str, pa.Table]:
        return {LOGLIK.name: loglik_table(per_seed, self.batch.mask.sum(dim=1).numpy())}

    def identity(self) -> dict:
        return {"loglik_set_hash": table_hash(self.texts)}
