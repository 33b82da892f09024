"""Progress of a run of partitions as lines a person can follow: one per partition, no more.

    extraction 3/20 partitions done (micro|b|step8): 41,200 tokens/s, about 2 min 10 s left

Tokens per second are evaluation tokens times seeds compared, per second of the run so far (as
benchmarks/extraction.py counts them); the time left is the mean time per partition so far times
the partitions still to do, so it includes reading checkpoints and writing the lake.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def duration(seconds: float) -> str:
    """'45 s', '2 min 10 s', '1 h 05 min': precise enough to plan by, short enough to read."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class Progress:
    """Counts partitions as they finish and says where the run stands."""

    total: int
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    done: int = 0
    token_seeds: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def finished(self, key: str, token_seeds: int, outcome: str = "done") -> str:
        """Records one partition (`token_seeds`: its evaluation tokens times seeds; 0 for one not
        computed) and returns the line to log."""
        self.done += 1
        self.token_seeds += token_seeds
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.token_seeds / elapsed
        line = f"extraction {self.done}/{self.total} partitions {outcome} ({key}): {rate:,.0f} tokens/s"
        left = self.total - self.done
        if left:
            line += f", about {duration(elapsed / self.done * left)} left"
        else:
            line += f", all done in {duration(elapsed)}"
        return line
