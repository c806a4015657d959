"""Per-flow rate caps from congestion-control models (flow-level, not packet-level).

The flow model shares link capacity max-min fairly; these caps are what a
single TCP connection could reach on its own, which is why several parallel
streams can beat one on long or lossy paths:

* every flow is window-limited: ``window / RTT`` (receive-buffer limit; the
  Linux default ``tcp_rmem`` maximum is 6 MiB);
* ``reno``: the Mathis et al. (1997) response function,
  ``MSS / RTT * sqrt(3/2) / sqrt(p)`` for random loss rate ``p``;
* ``cubic``: RFC 8312 section 5: the larger of CUBIC's own response
  function (average window ``1.054 * RTT**0.75 / p**0.75`` packets with
  C = 0.4, beta = 0.7) and the Reno-friendly one;
* ``bbr``: model-based, so random loss does not cut its rate until it is
  heavy: BBRv1 keeps its pacing rate up to roughly 20% loss, so below that
  only the window and the bottleneck share limit it; above, Reno-like.

Caps are in bytes per second. These are steady-state models: slow start
and recovery transients are not modelled.
"""

from __future__ import annotations

import math

MSS = 1448  # bytes of payload per segment (1500-byte MTU with timestamps)
DEFAULT_WINDOW = 6 * 1024 * 1024  # bytes: Linux tcp_rmem max default
BBR_LOSS_TOLERANCE = 0.20

ALGORITHMS = ("cubic", "reno", "bbr")


def _mathis(rtt: float, loss: float) -> float:
    return MSS / rtt * math.sqrt(1.5) / math.sqrt(loss)


def _cubic(rtt: float, loss: float) -> float:
    packets = 1.054 * rtt**0.75 / loss**0.75
    return max(packets * MSS / rtt, _mathis(rtt, loss))


def flow_cap(algorithm: str, rtt: float, loss: float, window: int = DEFAULT_WINDOW) -> float:
    """The most one connection of ``algorithm`` can carry on this path, in bytes/s.

    ``rtt`` in seconds (> 0), ``loss`` the path's random loss probability.
    Returns ``inf`` when nothing but link sharing limits the flow.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown congestion control {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    rtt = max(rtt, 1e-6)
    cap = window / rtt
    if loss <= 0:
        return cap
    if loss >= 1:
        return 0.0
    if algorithm == "reno":
        return min(cap, _mathis(rtt, loss))
    if algorithm == "cubic":
        return min(cap, _cubic(rtt, loss))
    # bbr: tolerant of random loss up to a threshold, then collapses like Reno
    if loss < BBR_LOSS_TOLERANCE:
        return cap
    return min(cap, _mathis(rtt, loss))
