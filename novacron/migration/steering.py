"""How many streams a DWCP migration uses: each count judged on its own delivery rate.

The data plane's :class:`~novacron.transport.policy.StreamController` climbs over stream counts
(the mode's range, doubling while goodput rises by more than its gain, then trying the other way).
What it is told decides where it settles. It used to be told the round's running average rate,
which rises all round long as the round's start-up (round trips, opening streams, the first
batch's encoding) is amortised, whatever the count: every doubling looked like a gain, so a
migration on loopback climbed to the top of its mode's range (64 streams) and ran at 0.58x of a
plain AMST transfer, against 0.86x with 4 streams, and simulated datacenter migrations climbed to
128-256 streams that moved the same bytes as 32.

So each count is measured on its own, in steady state: from the completion of its first batch in
a round (that batch shared the streams with the previous count's last ones, or paid the round's
start-up) to the completion of its latest, the wire bytes of the batches completed in between
over that time. Batches in flight together share the streams and finish close together: one that
completes within ``GUARD`` of the first batch's transfer time after it counts in neither (on
loopback pipelined batches end 0.1-0.2 ms apart: a window of that length is no measurement).
A batch more than ``RESIZE`` times larger or smaller than the window's first also starts a new
window: round 0's batches grow with the measured rate (32 to 128 MiB on loopback) and a larger
batch moves faster per byte whatever the count, so mixing sizes favoured whichever count got the
larger ones (on loopback it had settled at 16-32 streams, 0.70-0.73x of AMST; since, at 8 in four
runs of six, 0.67-0.91x, with fixed 4 streams at 0.80-0.88x in the same runs).
After ``samples`` counted batches at a count, and after each one since, the migration's PBA
predictor forecasts that rate from its successive values, and the controller judges the count
by the forecast.
"""

from __future__ import annotations

import numpy as np

from novacron.prediction.predictors import Predictor
from novacron.transport.policy import StreamController

#: values the predictor sees per count (the MPC family looks at the last 5)
_HISTORY = 10
#: completions this soon after a window's first (as a share of that batch's time) are not counted
GUARD = 0.25
#: a batch this many times larger or smaller than the window's first starts a new window
RESIZE = 1.5


class StreamSteering:
    """The stream count of one migration to ``peer`` (module docstring). The source calls
    :meth:`delivered` as each batch completes and :meth:`new_round` before each round."""

    def __init__(
        self, controller: StreamController, peer: str, predictor: Predictor, streams: int, samples: int = 2
    ) -> None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.controller = controller
        self.peer = peer
        self.predictor = predictor
        self.samples = samples
        self._start_count(streams)

    def _start_count(self, streams: int) -> None:
        #: the count the next batch uses
        self.streams = streams
        self._bytes = 0  # wire bytes of the counted batches
        self._batches = 0
        self._closed = 0.0  # seconds of the windows of earlier rounds
        self._start: float | None = None  # the open window: from its first completion ...
        self._last: float | None = None  # ... to its latest counted one
        self._guard = 0.0  # completions up to this time are the first's partners
        self._size = 0  # page bytes of the window's first batch
        self._mbps: list[float] = []  # the count's rate after each counted batch

    def new_round(self) -> None:
        """The pipeline drained between rounds: the next round's first batch starts a window."""
        if self._start is not None and self._last is not None:
            self._closed += self._last - self._start
        self._start = self._last = None

    def delivered(self, streams: int, size: int, wire_bytes: int, launched: float, now: float) -> int:
        """A batch of ``size`` page bytes sent over ``streams`` streams at ``launched``
        completed ``now`` with ``wire_bytes`` on the wire; returns the count for the next batch."""
        if streams != self.streams:  # sent before the count changed: no evidence about this one
            return self.streams
        if self._start is not None and not self._size / RESIZE <= size <= self._size * RESIZE:
            self.new_round()  # batches resized (round 0's grow with the rate): a fresh window
        if self._start is None:
            self._start, self._guard, self._size = now, now + GUARD * (now - launched), size
            return self.streams
        if now <= self._guard:
            return self.streams
        self._bytes += wire_bytes
        self._batches += 1
        self._last = now
        self._mbps.append(self._bytes * 8 / (self._closed + now - self._start) / 1e6)
        if self._batches < self.samples:
            return self.streams
        forecast = float(self.predictor.predict(np.asarray(self._mbps[-_HISTORY:]), 1)[0])
        following = self.controller.observe(self.peer, streams, forecast * 1e6)
        if following != self.streams:
            self._start_count(following)
        return following
