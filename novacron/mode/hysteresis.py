"""Hysteresis: the pure state machine that turns window classifications into a mode.

Sans-I/O in the style of etcd-raft and h11: :class:`ModeTracker` owns no
timer, socket or clock. The detector (:mod:`novacron.mode.detector`) feeds it
one :class:`~novacron.mode.measurement.Measurement` per detection window and
acts on what it returns, so every rule below is unit-tested by feeding it
windows, without a runtime.

Rules, and why:

* A **change** needs ``windows`` (K) consecutive conclusive windows that all
  differ from the current mode. One bad window (a GC pause, a burst of cross
  traffic) must not reconfigure the transport, the codec and consensus; a
  borderline link whose windows alternate never gathers K in a row, so it
  does not flap.
* The new mode is the one most of those K windows reported, ties going to
  the mode seen most recently. When they agree (the usual case) that is
  simply "K consecutive windows agreeing"; when a link wobbles between hybrid
  and internet after being a datacenter link, it still leaves datacenter
  mode instead of being held there by the disagreement. Ties go to the
  freshest evidence so that one window measured while conditions changed
  (which may read as a third mode) cannot outvote the windows after it: with
  K = 2, ``[hybrid, datacenter]`` after an internet link healed is
  datacenter, not a detour through hybrid.
* A window that agrees with the current mode resets the count.
* An **inconclusive** window (no RTT sample answered, or too little data to
  decide, see :func:`~novacron.mode.modes.classify`) neither counts nor
  resets: it carries no evidence either way.
* The **first** conclusive window sets the mode at once: there is no earlier
  mode to protect, and until then the components run without one.
* A **forced** mode (``forced_mode`` / ``NOVACRON_DWCP_MODE``) is fixed:
  windows are recorded but never change it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .measurement import Measurement
from .modes import DEFAULT_THRESHOLDS, Mode, Thresholds, classify

#: The original design's hysteresis: three consecutive windows.
DEFAULT_HYSTERESIS = 3


@dataclass(frozen=True, slots=True)
class Transition:
    """What :meth:`ModeTracker.feed` returns when the mode changes."""

    old: Mode | None
    new: Mode


class ModeTracker:
    """Classification plus K-window hysteresis for one peer; see the module docstring."""

    def __init__(
        self,
        windows: int = DEFAULT_HYSTERESIS,
        *,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        forced: Mode | None = None,
    ) -> None:
        if windows < 1:
            raise ValueError(f"hysteresis needs at least 1 window, got {windows}")
        self.windows = windows
        self.thresholds = thresholds
        self.forced = forced
        self.mode: Mode | None = forced
        #: classifications of the consecutive windows that disagreed with ``mode`` so far
        self.pending: list[Mode] = []
        #: the last window's classification (``None``: inconclusive)
        self.last: Mode | None = None

    def feed(self, window: Measurement) -> Transition | None:
        """Classify one window and apply the hysteresis; a :class:`Transition` if the mode changed."""
        return self.feed_mode(classify(window.rtt, window.bandwidth_bps, self.thresholds))

    def feed_mode(self, observed: Mode | None) -> Transition | None:
        """The same as :meth:`feed`, for an already classified window."""
        self.last = observed
        if self.forced is not None or observed is None:
            return None
        if self.mode is None:
            self.mode = observed
            return Transition(None, observed)
        if observed == self.mode:
            self.pending.clear()
            return None
        self.pending.append(observed)
        if len(self.pending) < self.windows:
            return None
        new = _majority(self.pending)
        old, self.mode = self.mode, new
        self.pending.clear()
        return Transition(old, new)

    def __repr__(self) -> str:
        forced = f" forced={self.forced}" if self.forced else ""
        return f"<ModeTracker mode={self.mode} pending={[str(m) for m in self.pending]}{forced}>"


def _majority(modes: list[Mode]) -> Mode:
    """The most frequent mode; ties go to the one seen last."""
    counts = Counter(modes)
    last_seen = {mode: i for i, mode in enumerate(modes)}
    return max(counts, key=lambda m: (counts[m], last_seen[m]))
