"""How fast the link moved a migration's bytes, net of the source's own stalls.

A round's wire bytes over its elapsed time understate the link whenever the source, not the
link, sets the pace: while it encodes the next batch nothing may be in flight. The codec
selector, told that lower rate, then picks slower, stronger compression, which makes the
source slower still (simulated WAN, 1 Gbit/s, realistic memory: zstd-9 chosen, each 32 MiB
batch 0.24 s of encoding for 0.13 s on the wire). So the link is judged only over the time
at least one batch was in flight, less one round trip per such busy period: the first byte's
way there and the last acknowledgement's way back, during which the sender moves nothing new.
"""

from __future__ import annotations


class BusyTime:
    """Seconds with at least one transfer in flight; ``start`` and ``end`` bracket each one."""

    def __init__(self) -> None:
        self.seconds = 0.0  # of busy periods that ended
        self.periods = 0  # busy periods begun
        self._open = 0
        self._since = 0.0

    def start(self, now: float) -> None:
        if self._open == 0:
            self._since = now
            self.periods += 1
        self._open += 1

    def end(self, now: float) -> None:
        if self._open <= 0:
            raise RuntimeError("BusyTime.end without a matching start")
        self._open -= 1
        if self._open == 0:
            self.seconds += now - self._since

    def moving(self, now: float, rtt: float) -> float:
        """Busy seconds so far less a round trip per period (at least a tenth of them)."""
        busy = self.seconds + (now - self._since if self._open else 0.0)
        return max(busy - self.periods * rtt, 0.1 * busy)
