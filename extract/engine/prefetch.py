"""Reading checkpoints ahead of the device on a background thread.

The extractor reads the next checkpoints (weights from disk or the hub cache) while the device
computes on the current one, across partition boundaries too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from extract.sources.checkpoint_reader import CheckpointWeights


class Prefetcher:
    """Reads checkpoints in the order they will be used, up to `depth` ahead of the consumer.

    Iterating yields one `CheckpointWeights` per item of `items`, each read on a background
    thread while the caller computes on the previous one. At most `depth` checkpoints sit in
    memory unconsumed, which bounds host memory whatever the number of checkpoints.
    """

    def __init__(self, items: Iterable, read: Callable[..., CheckpointWeights], depth: int):
        if depth < 1:
            raise ValueError(f"prefetch depth must be at least 1, got {depth}")
        self._items = iter(items)
        self._read = read
        self._depth = depth

    def __iter__(self) -> Iterator[CheckpointWeights]:
        pending: deque[Future] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-reader") as pool:
            try:
                for item in self._items:
                    pending.append(pool.submit(self._read, item))
                    if len(pending) > self._depth:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                # A consumer that stops early (an error, a break) must not wait for reads it
                # will never use.
                for future in pending:
                    future.cancel()
