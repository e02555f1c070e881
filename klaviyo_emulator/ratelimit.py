"""Fixed-window rate limiting (burst 1 s + steady 60 s) per operation and API key."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .spec import RateLimit


@dataclass
class Decision:
    allowed: bool
    retry_after: int = 0  # seconds, when not allowed
    limit: int = 0  # steady-window limit (RateLimit-Limit)
    remaining: int = 0
    reset: int = 0  # seconds until the steady window resets


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # (key, window_s) -> (window_start, count)
        self._windows: dict[tuple[str, str, int], tuple[float, int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()

    def check(self, operation_id: str, api_key: str, limits: tuple[RateLimit, ...], scale: float) -> Decision:
        if scale <= 0 or not limits:
            return Decision(True)
        now = self._clock()
        scaled = [(rl.window_s, max(1, int(rl.limit * scale))) for rl in limits]
        with self._lock:
            states = []
            retry = 0.0
            for window_s, limit in scaled:
                start = math.floor(now / window_s) * window_s
                ws, count = self._windows.get((operation_id, api_key, window_s), (start, 0))
                if ws != start:
                    ws, count = start, 0
                states.append((window_s, limit, ws, count))
                if count >= limit:
                    retry = max(retry, ws + window_s - now)
            if retry > 0:
                return Decision(False, retry_after=max(1, math.ceil(retry)))
            for window_s, _limit, ws, count in states:
                self._windows[(operation_id, api_key, window_s)] = (ws, count + 1)
            window_s, limit, ws, count = max(states, key=lambda s: s[0])
            return Decision(
                True,
                limit=limit,
                remaining=max(0, limit - count - 1),
                reset=max(1, math.ceil(ws + window_s - now)),
            )
