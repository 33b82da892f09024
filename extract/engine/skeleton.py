"""A model kept on the device and refilled with each checkpoint's weights.

Building a Hugging Face model allocates and randomly initialises every parameter; doing that once
per checkpoint costs more than the checkpoint's forward pass at small sizes. A `Skeleton` is built
once per architecture and `load` copies a checkpoint's tensors into it.

The model is split where precision matters: the transformer body runs in the forward precision
(`Precision`: fp32 unless bf16 or TF32 is asked for), and the unembedding runs in fp32 from the
checkpoint's own fp32 (or upcast) output-embedding weights (and bias, where the head has one), so
log-softmax and KL see fp32 logits of fp32 weights.

Masked LMs (BERT) put a transform (dense, GELU, LayerNorm) between the encoder and the output
embedding; `head_input` applies it, in the forward dtype, to the positions that are predicted
only, so the encoder's states stay available for the fingerprints.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.core_model_loading import WeightRenaming, rename_source_key

from extract.config import FORWARD_PRECISIONS
from extract.sources.checkpoint_reader import CheckpointWeights

# Buffers older checkpoints carry that current models rebuild from their config.
IGNORED_KEYS = ("attention.bias", "attention.masked_bias", "rotary_emb.inv_freq")
# Pre-training heads a masked-LM checkpoint may carry beside its MLM head (MultiBERT's are
# BertForPreTraining): the pooler and next-sentence head play no part in masked prediction.
IGNORED_PREFIXES = ("bert.pooler.", "cls.seq_relationship.")
# Where models keep the norm between their last layer and the output embedding (GPT-NeoX, GPT-2,
# Llama and its kin). BERT has none: each of its layers ends in a LayerNorm already.
FINAL_NORMS = ("final_layer_norm", "ln_f", "norm")


@dataclass(frozen=True)
class Head:
    """The unembedding in fp32: logits = hidden @ weight.T (+ bias)."""

    weight: torch.Tensor  # [V, H] fp32
    bias: torch.Tensor | None = None  # [V] fp32

    @property
    def vocab(self) -> int:
        return self.weight.shape[0]

    def logits(self, hidden: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """fp32 logits [..., V]; written into `out` when given (a reused buffer: a fresh
        vocabulary-sized allocation per chunk costs more in page faults than the product itself)."""
        flat = hidden.float().reshape(-1, hidden.shape[-1])
        with cuda_tf32(False):  # fp32 whatever the body ran in or the process switched on
            if self.bias is None:
                logits = torch.matmul(flat, self.weight.T, out=out)
            else:
                logits = torch.addmm(self.bias, flat, self.weight.T, out=out)
        return logits.view(*hidden.shape[:-1], self.vocab)

    def is_finite(self) -> bool:
        return bool(torch.isfinite(self.weight).all()) and (self.bias is None or bool(torch.isfinite(self.bias).all()))


class SkeletonMismatch(RuntimeError):
    """A checkpoint's tensors do not fit the model built from its config; the message names it."""


@contextmanager
def cuda_tf32(allowed: bool) -> Iterator[None]:
    """CUDA's fp32 matmuls may round their inputs to TF32 (10 mantissa bits) while inside; restored after.

    A CUDA-only switch: CPU matmuls are fp32 either way.
    """
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@dataclass(frozen=True)
class Precision:
    """How the transformer body runs: its tensors' dtype, and whether its fp32 matmuls may use TF32.

    "float32" (the default) is exact fp32 on every device. "bfloat16" and "tf32" are opt-ins,
    faster on GPUs and less exact (docs/performance.md, Forward precision, measures by how much):
    bf16 keeps the weights and activations in bf16 (8 mantissa bits; fp32's exponent range, so no
    overflow); TF32 keeps fp32 tensors and lets CUDA's matmuls round their inputs to 10 mantissa
    bits. On a CPU TF32 is exactly fp32, and bf16 runs slower than fp32 on CPUs without bf16
    matrix units. fp16 is not offered: its range overflows in large models' activations.
    """

    name: str  # "float32", "tf32" or "bfloat16": what the manifest records as forward_dtype
    dtype: torch.dtype
    tf32: bool

    @property
    def exact(self) -> bool:
        return self.dtype == torch.float32 and not self.tf32

    def body(self) -> AbstractContextManager[None]:
        """The context the body's forward runs in: TF32 on only where asked for."""
        return cuda_tf32(self.tf32)


def forward_precision(requested: str) -> Precision:
    """The transformer body's forward precision, from `extraction.dtype`."""
    if requested == "float32":
        return Precision("float32", torch.float32, tf32=False)
    if requested == "tf32":
        return Precision("tf32", torch.float32, tf32=True)
    if requested == "bfloat16":
        return Precision("bfloat16", torch.bfloat16, tf32=False)
    raise ValueError(f"forward precision must be one of {', '.join(FORWARD_PRECISIONS)}, got {requested!r}")


def architecture_key(config: PretrainedConfig) -> str:
    """Configs that build the same model give the same key (paths, versions and dtypes aside)."""
    values = config.to_dict()
    for volatile in ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash"):
        values.pop(volatile, None)
    return repr(sorted(values.items(), key=lambda item: item[0]))


class Skeleton:
    """One model on `device` in `precision`, reused for every checkpoint of one architecture."""

    def __init__(
        self,
        config: PretrainedConfig,
        device: torch.device,
        precision: Precision,
        compile: bool,
        objective: str,
    ):
        self.key = architecture_key(config)
        self.device = device
        self.precision = precision
        self.objective = objective
        auto = AutoModelForMaskedLM if objective == "masked" else AutoModelForCausalLM
        with torch.device(device):
            model: PreTrainedModel = auto.from_config(config, dtype=precision.dtype)
        self.model = model.eval()
        self.body = model.base_model
        self._transform = self._head_transform(model) if objective == "masked" else None
        # torch.compile fuses the body's elementwise work (rotary embeddings, norms, GELU), which
        # at small widths costs more than its matmuls. It compiles once per skeleton, and weights
        # copied in later are read by the same compiled code.
        self._forward = torch.compile(self.body, dynamic=None) if compile else self.body
        if compile:
            # Dynamo counts compilations per Python function, and every skeleton runs the same
            # forward function of transformers: a few sizes with a few input shapes each pass
            # its default limit of 8, after which every later call would run eagerly.
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        self.compiled = compile
        head = model.get_output_embeddings()
        if head is None or not isinstance(head, torch.nn.Linear):
            raise SkeletonMismatch(f"{type(model).__name__} has no linear output embedding to split off")
        # Every name under which the output embedding's weight (and bias) is stored (two when it
        # is tied to the input embedding), so it can be taken from the checkpoint in its stored
        # precision. Likewise every tied group: a checkpoint stores each group under one name.
        named = list(model.named_parameters(remove_duplicate=False))
        self.head_keys = [name for name, p in named if p is head.weight]
        self.bias_keys = [name for name, p in named if head.bias is not None and p is head.bias]
        groups: dict[int, list[str]] = {}
        for name, parameter in named:
            groups.setdefault(id(parameter), []).append(name)
        self._tied_groups = list(groups.values())
        self.parameter_names = {name for name, _ in named}
        self.verified = False
        # from_pretrained renames keys of older checkpoints (GPT-NeoX's `embed_out` is now
        # `lm_head`); the same renamings are applied here. Conversions that reshape tensors
        # (fused projections, stacked experts) are not, and such checkpoints are refused.
        transforms = get_model_conversion_mapping(model)
        self._renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
        self._converts = len(self._renamings) != len(transforms)
        self._meta_state = dict.fromkeys(model.state_dict(), True)
        self._names: dict[str, str] = {}

    def _model_key(self, key: str) -> str:
        if key not in self._names:
            self._names[key], _ = rename_source_key(
                key, self._renamings, [], self.model.base_model_prefix, self._meta_state
            )
        return self._names[key]

    @staticmethod
    def _head_transform(model: PreTrainedModel) -> torch.nn.Module:
        """BERT's MLM-head transform: what runs between the encoder and the output embedding."""
        predictions = getattr(getattr(model, "cls", None), "predictions", None)
        transform = getattr(predictions, "transform", None)
        if transform is None:
            raise SkeletonMismatch(
                f"{type(model).__name__}: masked LMs are supported with BERT's head (cls.predictions.transform)"
            )
        return transform

    def load(self, weights: CheckpointWeights) -> Head:
        """Copies the checkpoint into the model; returns its fp32 output embedding (and bias) on the device."""
        state = {
            self._model_key(k): v
            for k, v in weights.state_dict.items()
            if not k.endswith(IGNORED_KEYS) and not k.startswith(IGNORED_PREFIXES)
        }
        unexpected = set(state) - self.parameter_names - {n for n, _ in self.model.named_buffers()}
        # A tied parameter (an output embedding tied to the input embedding, BERT's decoder bias)
        # is stored once, under any of its names.
        missing = {name for group in self._tied_groups if not any(key in state for key in group) for name in group}
        if missing or unexpected:
            if self._converts:
                raise SkeletonMismatch(
                    f"{weights.source}: {type(self.model).__name__} checkpoints need tensor conversions on loading, "
                    "which the extraction's model skeleton does not apply"
                )
            raise SkeletonMismatch(
                f"{weights.source}: weights do not match its config's architecture "
                f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
            )
        try:
            self.model.load_state_dict(state, strict=False)
        except RuntimeError as error:  # a shape that differs from the config's
            raise SkeletonMismatch(f"{weights.source}: {error}") from error
        weight = state[next(key for key in self.head_keys if key in state)]
        bias = state[next(key for key in self.bias_keys if key in state)] if self.bias_keys else None
        head = Head(
            weight.to(self.device, torch.float32, non_blocking=True),
            None if bias is None else bias.to(self.device, torch.float32, non_blocking=True),
        )
        if not self.verified:
            self._verify(head, weights.source)
        return head

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The body's last hidden states [B, T, H] (after the final layer norm), in the forward dtype.

        Causal models need no attention mask when padding comes after the real tokens; a masked
        LM attends both ways and needs one wherever a row is padded.
        """
        # Run once per input: a key-value cache would only be built and thrown away.
        inputs = {"input_ids": input_ids, "use_cache": False}
        if attention_mask is not None:
            inputs["attention_mask"] = attention_mask
        with self.precision.body():
            if self.compiled:
                try:
                    return self._forward(**inputs).last_hidden_state
                # Broad on purpose: a machine without a working compiler toolchain fails inside
                # inductor in many ways; the eager body gives the same numbers, only slower.
                except Exception as error:
                    warnings.warn(f"torch.compile failed, running the model eagerly: {error}", stacklevel=2)
                    self._forward, self.compiled = self.body, False
            return self.body(**inputs).last_hidden_state

    @property
    def n_layers(self) -> int:
        return len(self._layer_stack())

    def _layer_stack(self) -> torch.nn.ModuleList:
        """The body's transformer layers: its ModuleList as long as the config's layer count."""
        depth = self.model.config.num_hidden_layers
        for module in self.body.modules():
            if isinstance(module, torch.nn.ModuleList) and len(module) == depth:
                return module
        raise SkeletonMismatch(f"{type(self.body).__name__}: no list of {depth} layers to read the logit lens from")

    def _final_norm(self) -> torch.nn.Module:
        for name in FINAL_NORMS:
            norm = getattr(self.body, name, None)
            if isinstance(norm, torch.nn.Module):
                return norm
        if self.objective == "masked":
            return torch.nn.Identity()
        raise SkeletonMismatch(
            f"{type(self.body).__name__}: no final norm ({', '.join(FINAL_NORMS)}) for the logit lens"
        )

    def lens_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, layers: tuple[int, ...]
    ) -> torch.Tensor:
        """The logit lens's inputs [len(layers), B, T, H]: the residual stream after each of `layers`
        layers (0: the embeddings' output) through the model's final norm, so that `head_input` and
        the output embedding turn them into the lens's logits. The last layer's is exactly
        `hidden_states`. Runs the eager body: the states are read with forward hooks."""
        stack, depth = self._layer_stack(), self.model.config.num_hidden_layers
        if any(not 0 <= layer <= depth for layer in layers):
            raise SkeletonMismatch(f"layers {list(layers)} asked for, but the model has layers 0 .. {depth}")
        captured: dict[int, torch.Tensor] = {}

        def after(index):
            def hook(module, args, output):
                captured[index] = output[0] if isinstance(output, tuple) else output

            return hook

        def before_first(module, args, kwargs):
            captured[0] = args[0] if args else kwargs["hidden_states"]

        handles = [stack[0].register_forward_pre_hook(before_first, with_kwargs=True)] if 0 in layers else []
        handles += [stack[layer - 1].register_forward_hook(after(layer)) for layer in set(layers) - {0}]
        inputs = {"input_ids": input_ids, "use_cache": False}
        if attention_mask is not None:
            inputs["attention_mask"] = attention_mask
        try:
            with self.precision.body():
                self.body(**inputs)
                norm = self._final_norm()
                return torch.stack([norm(captured[layer]) for layer in layers])
        finally:
            for handle in handles:
                handle.remove()

    def head_input(self, hidden: torch.Tensor) -> torch.Tensor:
        """What the output embedding is applied to: the hidden states, through BERT's transform if any."""
        if self._transform is None:
            return hidden
        with self.precision.body():
            return self._transform(hidden)

    def _verify(self, head: Head, source: str) -> None:
        """Checks once per skeleton that head(body(x)) is the model's own logits.

        The split assumes nothing happens after the output embedding (no logit scaling or
        soft-capping); an architecture that does something there is refused rather than measured
        wrongly.
        """
        ids = torch.arange(min(8, head.vocab), device=self.device)[None]
        with torch.inference_mode():
            # The eager body: compiling for this one-off shape would cost more than the check.
            with self.precision.body():
                hidden = self.body(input_ids=ids).last_hidden_state
                whole = self.model(input_ids=ids).logits.float()
            split = head.logits(self.head_input(hidden))
        tolerance = 1e-4 if self.precision.exact else 5e-2
        scale = whole.abs().max().clamp(min=1.0)
        if not torch.isfinite(split).all():
            return  # non-finite weights are reported by the extraction, naming the checkpoint
        if (split - whole).abs().max() > tolerance * scale:
            raise SkeletonMismatch(
                f"{source}: {type(self.model).__name__} transforms its logits after the output embedding; "
                "the extraction's fp32 unembedding would not reproduce them"
            )
        self.verified = True
