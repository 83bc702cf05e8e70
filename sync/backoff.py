"""Exponential backoff with full jitter, for retrying the collector.

After the n-th consecutive failure (counting from 0) the wait is uniformly random in
``[0, min(cap, base * 2**n)]`` ("full jitter"): the ceiling doubles up to the cap, and the
randomness spreads a fleet of gates that lost the collector at the same moment, so they do not
all come back in the same second when it returns.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for consecutive failures; :meth:`reset` after a success."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None):
        if not 0 < base <= cap:
            raise ValueError(f"backoff needs 0 < base <= cap, not base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.rng = rng if rng is not None else random.Random()
        self.failures = 0

    @property
    def ceiling(self) -> float:
        """The longest wait the next failure can draw."""
        # min() before the power would overflow after ~1000 failures; 2**64 is plenty.
        return min(self.cap, self.base * 2 ** min(self.failures, 64))

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before retrying."""
        delay = self.rng.uniform(0, self.ceiling)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
