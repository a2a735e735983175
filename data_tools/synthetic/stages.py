"""Wall time per rendering stage, for the benchmark; the renderer skips the clock when given none."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext


class StageTimes:
    """Seconds spent in each named stage, summed over calls (in first-seen order).

    ``clock`` is wall time by default; ``time.process_time`` gives this process's CPU time, which
    other load on the machine disturbs less.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds: dict[str, float] = {}
        self.clock = clock

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to stage ``name``."""
        start = self.clock()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self.clock() - start


def stage(times: StageTimes | None, name: str) -> AbstractContextManager[None]:
    """``times.measure(name)``, or a no-op context when ``times`` is None."""
    return nullcontext() if times is None else times.measure(name)
