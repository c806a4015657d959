"""The round trip to each peer, for senders that size what they keep in flight by it.

A sender that keeps a window of data in flight must hold at least a round trip of the link in
it, or the link idles while acknowledgements travel; more than that is data committed to the
link that a more urgent transfer cannot overtake. AMST's own acknowledgements cannot measure the
round trip: a chunk is acknowledged once it has crossed the link, so the time includes its
transmission behind the other chunks in flight (and, on real sockets, behind the kernel's send
buffer: a window sized from that time would grow the time it is sized from). A small probe
message, echoed by the peer's AMST, crosses the control channel instead.

The estimate is the smallest sample of the last ``memory`` seconds (as BBR's min-RTT filter, so
that queueing delay does not enter it and a changed path is noticed within ``memory``).
"""

from __future__ import annotations

from collections import deque

#: how long a sample counts towards the minimum (BBR's min-RTT window)
MEMORY = 10.0


class MinFilter:
    """The smallest of the samples of the last ``memory`` seconds (the latest, when all are older:
    a round trip measured a while ago is a better guess than none)."""

    def __init__(self, memory: float = MEMORY) -> None:
        if not memory > 0:
            raise ValueError(f"memory must be > 0 seconds, got {memory}")
        self.memory = float(memory)
        # (time, sample), samples increasing: a sample hides every larger one before it
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, now: float, sample: float) -> None:
        while self._samples and self._samples[-1][1] >= sample:
            self._samples.pop()
        self._samples.append((now, sample))

    def value(self, now: float) -> float | None:
        while len(self._samples) > 1 and self._samples[0][0] < now - self.memory:
            self._samples.popleft()
        return self._samples[0][1] if self._samples else None
