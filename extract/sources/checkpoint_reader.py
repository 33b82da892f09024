"""Reading checkpoints: each weights file is read from disk once, hashed and parsed from the same bytes.

`read_checkpoint` turns a Hugging Face checkpoint folder into CPU tensors, its config and a
sha256 of its weight files; the extraction copies the tensors into a model skeleton it keeps on
the device, so no model is ever rebuilt per checkpoint. `Prefetcher` reads the next checkpoints
on a background thread while the device computes on the current one: file reads, hashing and
safetensors parsing all release the GIL.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from transformers import AutoConfig, PretrainedConfig

SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"


class CheckpointUnreadable(RuntimeError):
    """A checkpoint folder is missing, incomplete or damaged; the message names the folder."""


@dataclass
class CheckpointWeights:
    """One checkpoint in CPU memory: everything the extraction needs from disk."""

    source: str
    config: PretrainedConfig
    state_dict: dict[str, torch.Tensor]
    digest: str  # "sha256:<hex>" over the weight files' bytes, in file-name order
    n_bytes: int  # bytes of weight files read
    read_s: float  # seconds spent reading, hashing and parsing


def weight_files(folder: Path) -> list[Path]:
    """The folder's weight files: one safetensors file, its shards, or a torch pickle."""
    index = folder / SAFETENSORS_INDEX
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / shard for shard in shards]
    safetensors_files = sorted(folder.glob("*.safetensors"))
    if safetensors_files:
        return safetensors_files
    if (folder / TORCH_WEIGHTS).exists():
        return [folder / TORCH_WEIGHTS]
    return []


def _parse(name: str, data: bytes) -> dict[str, torch.Tensor]:
    if name.endswith(".safetensors"):
        return safetensors.torch.load(data)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def read_checkpoint(folder: Path, source: str | None = None) -> CheckpointWeights:
    """Reads a checkpoint folder (config.json and weights) once: one read per file, hashed as read."""
    started = time.perf_counter()
    folder = Path(folder)
    source = source or str(folder)
    if not (folder / "config.json").exists():
        raise CheckpointUnreadable(f"checkpoint folder {source} is missing or has no config.json")
    files = weight_files(folder)
    if not files:
        raise CheckpointUnreadable(f"checkpoint folder {source} has no weights file (*.safetensors, {TORCH_WEIGHTS})")
    digest = hashlib.sha256()
    state_dict: dict[str, torch.Tensor] = {}
    n_bytes = 0
    try:
        config = AutoConfig.from_pretrained(str(folder))
        for path in files:
            data = path.read_bytes()
            digest.update(data)
            n_bytes += len(data)
            state_dict.update(_parse(path.name, data))
    # Broad on purpose: a damaged file fails inside safetensors, torch's unpickler or the config
    # parser, each with its own exception type, and the user needs the folder's name in every case.
    except Exception as error:
        raise CheckpointUnreadable(f"cannot read checkpoint {source}: {error}") from error
    return CheckpointWeights(
        source=source,
        config=config,
        state_dict=state_dict,
        digest="sha256:" + digest.hexdigest(),
        n_bytes=n_bytes,
        read_s=time.perf_counter() - started,
    )
