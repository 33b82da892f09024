"""The machine's own limits, measured: matmul FLOP/s, memory bandwidth and disk read bandwidth.

Benchmarks report speed as a fraction of these rather than of a datasheet figure, so the numbers
mean the same on a 2-core CI box and on an H100.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class MachineLimits:
    device: str
    matmul_flops: dict[str, float]  # dtype name -> FLOP/s of a large square matmul
    memory_bytes_per_s: float  # bytes read plus bytes written per second by a large copy
    disk_read_bytes_per_s: float  # a cold sequential read of a file on the benchmark's disk
    threads: int


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int = 2048, min_seconds: float = 1.0) -> float:
    """Sustained FLOP/s of n x n matmuls (2 n^3 FLOPs each), after one warm-up."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    _sync(device)
    repeats, elapsed = 0, 0.0
    started = time.perf_counter()
    while elapsed < min_seconds:
        torch.mm(a, b, out=out)
        repeats += 1
        _sync(device)
        elapsed = time.perf_counter() - started
    return 2 * n**3 * repeats / elapsed


def memory_bandwidth(device: torch.device, n_bytes: int = 512 << 20, repeats: int = 5) -> float:
    """Bytes/s moved by a copy between two tensors far larger than any cache, read and written
    bytes both counted (STREAM's "copy"); the best of `repeats`, after one untimed copy."""
    source = torch.ones(n_bytes // 4, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        target.copy_(source)
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * n_bytes / best


def disk_read_bandwidth(folder: Path, n_bytes: int = 512 << 20) -> float:
    """Bytes/s of a sequential read of a fresh file whose pages were dropped from the page cache.

    posix_fadvise(DONTNEED) after fsync evicts the file's clean pages without root, so the read
    goes to the disk rather than to memory.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix="disk-read-")
    path = Path(name)
    try:
        block = os.urandom(8 << 20)
        with os.fdopen(handle, "wb") as out:
            for _ in range(n_bytes // len(block)):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
            os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        started = time.perf_counter()
        with path.open("rb", buffering=0) as source:
            while source.read(16 << 20):
                pass
        return n_bytes / (time.perf_counter() - started)
    finally:
        path.unlink(missing_ok=True)


def measure(device: torch.device, scratch: Path) -> MachineLimits:
    dtypes = [torch.float32]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        dtypes.append(torch.bfloat16)
    n = 8192 if device.type == "cuda" else 2048
    return MachineLimits(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        matmul_flops={str(d).removeprefix("torch."): matmul_flops(device, d, n) for d in dtypes},
        memory_bytes_per_s=memory_bandwidth(device),
        disk_read_bytes_per_s=disk_read_bandwidth(scratch),
        threads=torch.get_num_threads(),
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(limits: MachineLimits) -> list[str]:
    lines = [f"device: {limits.device}, torch threads: {limits.threads}"]
    lines += [f"matmul {dtype}: {flops / 1e9:,.1f} GFLOP/s" for dtype, flops in limits.matmul_flops.items()]
    lines.append(f"memory (copy, read + write): {limits.memory_bytes_per_s / 1e9:,.1f} GB/s")
    lines.append(f"disk read (cold, sequential): {limits.disk_read_bytes_per_s / 1e6:,.0f} MB/s")
    return lines
