"""The mode-detection service: probes peers through the runtime, every ``interval``.

:class:`ModeDetector` is the thin I/O shell around the pure parts
(:class:`~novacron.mode.measurement.PeerEstimator` for the statistics,
:class:`~novacron.mode.hysteresis.ModeTracker` for the decisions). It uses
only the runtime contract, so the same code runs in the simulator and on the
real backend.

One **detection round** starts every ``interval`` seconds (drift-free: round
k starts at ``first + k * interval``; a start that finds the previous round
still running is skipped) and, for each peer:

1. RTT probes: ``probes`` :class:`~novacron.mode.messages.ModeProbe`
   messages to every peer at once, ``probe_spacing`` apart; answers within
   ``probe_timeout`` after the last one are RTT samples, the rest are losses;
2. bandwidth probes, one peer at a time (two probes at once would share the
   node's own NIC and each see half of it) and only to peers that answered an
   RTT probe (a transfer to an unreachable peer would stall the round): a
   small then a large transfer, turned into a size-differential estimate
   (a probe that times out yields its size / ``transfer_timeout``: the path
   is at most that fast);
3. the window closes: one :class:`~novacron.mode.measurement.Measurement`
   per peer, fed to the peer's tracker; changes are published.

Passive samples arrive between rounds through :meth:`ModeDetector.observe_transfer`.

**Detection bound.** Say conditions were stable (windows agreed with the
current mode) and change at time T, rounds last at most ``m`` seconds (the
probing time) and ``m <= interval``. A round whose measurements all happen
after T sees only the new conditions (and is assumed conclusive: some probe
answered); the first such *clean* round starts
within ``interval`` of T, and K clean rounds in a row finish by
``T + interval + (K - 1) * interval + m = T + K * interval + m``, hence
**within T + (K + 1) * interval**: one interval of alignment plus K windows.
At most one round straddles T, and whatever it reads cannot push the change
later: if it agrees with the old mode it resets the count before the clean
rounds begin; otherwise it is one of at most K pending windows whose majority
(ties to the latest) is the clean rounds' mode once they complete the count,
except with K = 1, where it may cause one intermediate change that the first
clean round corrects. It can only make detection sooner (no sooner than
``(K - 1) * interval - m`` after T). Two caveats, both documented where they
arise: a passive bandwidth sample from a transfer that ran before T can hold
a switch *to a slower mode* for one more round (the max filter forgets it
then); and with many peers ``m`` grows (bandwidth probes are sequential), so
keep ``m <= interval`` by restricting ``peers`` or lengthening the interval;
a warning is logged when a round overruns.

**Per-peer and node-level modes.** Each peer has its own mode (stream counts
and codecs are per link). The node-level mode is the most conservative of the
peers' modes (consensus and other node-wide settings must suit the worst
link); its changes are published with ``peer=None``.

**Forced mode.** With ``forced_mode`` set (config or ``NOVACRON_DWCP_MODE``),
or auto-detection off (then :data:`~novacron.mode.settings.STATIC_DEFAULT_MODE`),
no round runs: every peer and the node are in that mode, which new
subscribers receive at once. The node still answers other nodes' probes.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from novacron.config import DWCPConfig
from novacron.runtime import (
    App,
    Cancellable,
    FutureLike,
    Payload,
    Runtime,
    TransferError,
    TransferReport,
    wait_for,
)

from .events import ModeCallback, ModeChange, Subscribers, SwitchRecord
from .hysteresis import ModeTracker
from .measurement import Measurement, PeerEstimator, size_differential_bps
from .messages import PROBE_TRANSFER_TAG, ModeProbe, ModeProbeAck
from .modes import Mode, most_conservative
from .settings import DetectionSettings

log = logging.getLogger(__name__)

#: Builds a bandwidth probe's payload of a given size. ``bytes`` (zeros) works on
#: both runtimes; in the simulator ``novacron.runtime.VirtualPayload`` avoids the allocation.
PayloadFactory = Callable[[int], Payload]


class ModeDetector:
    """Per-peer network-mode detection on one node; see the module docstring.

    ``peers`` restricts probing to those nodes (default: ``rt.peers`` at each
    round). ``payload`` builds bandwidth-probe payloads (see
    :data:`PayloadFactory`). ``perf_counter`` times subscriber
    reconfiguration (:attr:`switch_records`); it defaults to ``rt.now``,
    which is wall-clock time on the real backend but virtual time in the
    simulator, where callbacks take none: pass ``time.perf_counter`` to
    measure real CPU time in a simulation. ``start_delay`` is the time to the
    first round (default: a random phase in ``[0, interval)`` from
    ``rt.random``, so that nodes do not probe in lockstep).
    """

    def __init__(
        self,
        rt: Runtime,
        settings: DetectionSettings | None = None,
        *,
        peers: Iterable[str] | None = None,
        payload: PayloadFactory = bytes,
        perf_counter: Callable[[], float] | None = None,
        start_delay: float | None = None,
        keep_windows: int = 100,
    ) -> None:
        self.rt = rt
        self.settings = settings if settings is not None else DetectionSettings()
        self._fixed_peers = tuple(peers) if peers is not None else None
        self._payload_factory = payload
        self._payloads: dict[int, Payload] = {}
        self._subscribers = Subscribers(perf_counter if perf_counter is not None else rt.now)
        self._keep_windows = keep_windows
        self._estimators: dict[str, PeerEstimator] = {}
        self._trackers: dict[str, ModeTracker] = {}
        #: each peer's recent windows, oldest first
        self.windows: dict[str, deque[Measurement]] = {}
        #: every change published so far (bounded), oldest first
        self.changes: deque[ModeChange] = deque(maxlen=10_000)
        self.rounds = 0
        self._node_mode: Mode | None = self.settings.static_mode
        self._seq = 0
        self._outstanding: dict[int, tuple[str, float]] = {}
        self._sending = False
        self._burst_done: FutureLike[Any] | None = None
        self._answered: set[str] = set()
        self._stopped = False
        self._in_round = False
        self._round_over: FutureLike[Any] | None = None
        self._warned_overrun = False
        rt.on_message(ModeProbe, self._on_probe)
        rt.on_message(ModeProbeAck, self._on_ack)
        rt.on_transfer(PROBE_TRANSFER_TAG, _discard)
        self._timer: Cancellable | None = None
        if self.settings.static_mode is None:
            interval = self.settings.interval
            delay = rt.random.uniform(0, interval) if start_delay is None else start_delay
            self._next_start = rt.now() + delay
            self._timer = rt.call_later(delay, self._tick)

    @classmethod
    def from_config(cls, rt: Runtime, dwcp: DWCPConfig, **kwargs: Any) -> ModeDetector:
        """A detector configured by the ``dwcp`` section (interval, forced mode, auto-detection)."""
        return cls(rt, DetectionSettings.from_config(dwcp), **kwargs)

    # -- what other components read -------------------------------------------
    def mode_of(self, peer: str) -> Mode | None:
        """``peer``'s current mode (``None`` until its first conclusive window)."""
        static = self.settings.static_mode
        if static is not None:
            return static
        tracker = self._trackers.get(peer)
        return tracker.mode if tracker is not None else None

    @property
    def modes(self) -> dict[str, Mode]:
        """Every peer with a known mode, and that mode."""
        static = self.settings.static_mode
        if static is not None:
            return dict.fromkeys(self._targets(), static)
        return {peer: t.mode for peer, t in self._trackers.items() if t.mode is not None}

    @property
    def node_mode(self) -> Mode | None:
        """The node-level mode: the most conservative peer mode (or the forced mode)."""
        return self._node_mode

    def latest(self, peer: str) -> Measurement | None:
        """``peer``'s most recent window."""
        windows = self.windows.get(peer)
        return windows[-1] if windows else None

    @property
    def switch_records(self) -> deque[SwitchRecord]:
        """One record per published round of changes: subscribers, events, seconds taken."""
        return self._subscribers.records

    def subscribe(self, callback: ModeCallback, *, replay: bool = True) -> Callable[[], None]:
        """Call ``callback(ModeChange)`` on every mode change; returns an unsubscribe function.

        With ``replay`` (the default) the callback first receives the current
        state, as changes from ``None``: each known peer mode, then the node
        mode. A component that subscribes late is then configured like one
        that was there from the start.
        """
        unsubscribe = self._subscribers.add(callback)
        if replay:
            now = self.rt.now()
            for peer, mode in self.modes.items():
                self._subscribers.call(callback, ModeChange(peer, None, mode, now, self.latest(peer)))
            if self._node_mode is not None:
                self._subscribers.call(callback, ModeChange(None, None, self._node_mode, now))
        return unsubscribe

    def observe_transfer(self, report: TransferReport) -> None:
        """A passive bandwidth sample: the report of a real transfer this node sent.

        Transfers below ``passive_min_bytes`` and the detector's own probes are ignored.
        """
        if report.tag == PROBE_TRANSFER_TAG or report.src != self.rt.node_id:
            return
        if report.nbytes < self.settings.passive_min_bytes or report.duration <= 0:
            return
        self._estimator(report.dst).bandwidth_sample(report.goodput_bps, "passive")

    def stop(self) -> None:
        """Start no further round; one in progress completes (and still publishes).

        The node keeps answering other nodes' probes.
        """
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def close(self) -> None:
        """:meth:`stop`, then wait for the round in progress, so no probe transfer is cut short."""
        self.stop()
        if self._in_round:
            if self._round_over is None:
                self._round_over = self.rt.create_future()
            await self._round_over

    # -- the rounds -----------------------------------------------------------
    def _tick(self) -> None:
        """Start the round due now and schedule the next one (drift-free: ``first + k * interval``).

        Timers rather than a sleeping task, so that stopping is cancelling one timer.
        """
        self._timer = None
        if self._stopped:
            return
        if self._in_round:  # the previous round overran: skip this start, keep the schedule
            if not self._warned_overrun:
                self._warned_overrun = True
                log.warning(
                    "[%s] a mode-detection round took longer than the %gs interval; the detection "
                    "bound no longer holds (probe fewer peers or raise the interval)",
                    self.rt.node_id,
                    self.settings.interval,
                )
        else:
            self.rt.spawn(self._guarded_round())
        self._next_start += self.settings.interval
        self._timer = self.rt.call_later(max(0.0, self._next_start - self.rt.now()), self._tick)

    async def _guarded_round(self) -> None:
        try:
            await self.detect_once()
        except Exception:  # a bug in one round must not end detection for good
            log.exception("[%s] mode detection round failed", self.rt.node_id)

    async def detect_once(self) -> list[ModeChange]:
        """Run one detection round now; returns (and publishes) the changes it produced.

        Rounds must not overlap (their probes would be counted twice): with the periodic
        rounds running, this raises :class:`RuntimeError` if one is in progress.
        """
        if self._in_round:
            raise RuntimeError("a mode-detection round is already running on this node")
        self._in_round = True
        try:
            return await self._round()
        finally:
            self._in_round = False
            if self._round_over is not None:
                self._round_over.set_result(None)
                self._round_over = None

    async def _round(self) -> list[ModeChange]:
        peers = self._targets()
        started = self.rt.now()
        answered = await self._probe_rtts(peers)
        if self.settings.bandwidth_probe_bytes:
            for peer in peers:
                if peer in answered:  # a transfer to a peer that answers nothing would only stall
                    await self._probe_bandwidth(peer)
        ended = self.rt.now()
        self.rounds += 1
        events: list[ModeChange] = []
        for peer in peers:
            window = self._estimator(peer).close(started, ended)
            self._window_log(peer).append(window)
            transition = self._tracker(peer).feed(window)
            if transition is not None:
                events.append(ModeChange(peer, transition.old, transition.new, ended, window))
        node_event = self._node_change(peers, events, ended)
        if node_event is not None:
            events.append(node_event)
        self.changes.extend(events)
        self._subscribers.deliver(ended, events)
        return events

    def _node_change(self, peers: tuple[str, ...], events: list[ModeChange], at: float) -> ModeChange | None:
        if self.settings.static_mode is not None:
            return None
        new = most_conservative(self._trackers[p].mode for p in peers)
        old = self._node_mode
        if new is None or new == old:
            return None
        self._node_mode = new
        # The window behind it: a peer that moved to the new node mode, else one that left the old.
        cause = next((e for e in events if e.new == new), None) or next(
            (e for e in events if e.old == old), None
        )
        return ModeChange(None, old, new, at, cause.measurements if cause is not None else None)

    async def _probe_rtts(self, peers: tuple[str, ...]) -> set[str]:
        """One burst of RTT probes to ``peers``; returns the peers that answered at least one."""
        if not peers:
            return set()
        settings = self.settings
        self._answered = set()
        done = self._burst_done = self.rt.create_future()
        self._sending = True
        try:
            for i in range(settings.probes):
                if i:
                    await self.rt.sleep(settings.probe_spacing)
                for peer in peers:
                    self._seq += 1
                    sent_at = self.rt.now()
                    self._outstanding[self._seq] = (peer, sent_at)
                    self._estimator(peer).probe_sent()
                    self.rt.send(peer, ModeProbe(self._seq, sent_at))
            self._sending = False
            if self._outstanding:
                try:
                    await wait_for(self.rt, done, settings.probe_timeout)
                except TimeoutError:
                    pass  # the unanswered probes are this window's losses
        finally:
            self._sending = False
            self._outstanding.clear()
            self._burst_done = None
        return self._answered

    async def _probe_bandwidth(self, peer: str) -> None:
        s = self.settings
        reports: list[TransferReport] = []
        for nbytes in (s.bandwidth_small_bytes, s.bandwidth_probe_bytes):
            try:
                reports.append(await self._probe_transfer(peer, nbytes))
            except TimeoutError:
                # The probe could not move nbytes in transfer_timeout: the path is slower than
                # that rate, which is evidence too (a very lossy or thin link), not a non-result.
                self._estimator(peer).bandwidth_sample(nbytes * 8 / s.transfer_timeout, "active")
                return
            except TransferError as exc:
                log.debug("[%s] bandwidth probe to %s failed: %s", self.rt.node_id, peer, exc)
                return
        self._estimator(peer).bandwidth_sample(size_differential_bps(*reports), "active")

    async def _probe_transfer(self, peer: str, nbytes: int) -> TransferReport:
        payload = self._payloads.get(nbytes)
        if payload is None:
            payload = self._payloads[nbytes] = self._payload_factory(nbytes)
        s = self.settings
        transfer = self.rt.transfer(peer, payload, streams=s.probe_streams, tag=PROBE_TRANSFER_TAG)
        return await wait_for(self.rt, transfer, s.transfer_timeout)

    # -- message handlers -----------------------------------------------------
    def _on_probe(self, src: str, msg: ModeProbe) -> None:
        self.rt.send(src, ModeProbeAck(msg.seq, msg.sent_at))

    def _on_ack(self, src: str, msg: ModeProbeAck) -> None:
        entry = self._outstanding.get(msg.seq)
        if entry is None or entry[0] != src:
            return  # late (after the timeout), duplicated, or not ours
        del self._outstanding[msg.seq]
        # The RTT on our own clock, from our own record of the send time.
        self._estimator(src).rtt_sample(self.rt.now() - entry[1])
        self._answered.add(src)
        done = self._burst_done
        if not self._outstanding and not self._sending and done is not None and not done.done():
            done.set_result(None)

    # -- per-peer state -------------------------------------------------------
    def _targets(self) -> tuple[str, ...]:
        peers = self._fixed_peers if self._fixed_peers is not None else self.rt.peers
        return tuple(p for p in peers if p != self.rt.node_id)

    def _estimator(self, peer: str) -> PeerEstimator:
        estimator = self._estimators.get(peer)
        if estimator is None:
            estimator = self._estimators[peer] = PeerEstimator(peer)
        return estimator

    def _tracker(self, peer: str) -> ModeTracker:
        tracker = self._trackers.get(peer)
        if tracker is None:
            s = self.settings
            tracker = self._trackers[peer] = ModeTracker(
                s.hysteresis, thresholds=s.thresholds, forced=s.static_mode
            )
        return tracker

    def _window_log(self, peer: str) -> deque[Measurement]:
        history = self.windows.get(peer)
        if history is None:
            history = self.windows[peer] = deque(maxlen=self._keep_windows)
        return history


def _discard(src: str, payload: Payload) -> None:
    """Bandwidth probes carry nothing: the receiver only has to accept them."""


def detector_app(settings: DetectionSettings | None = None, **kwargs: Any) -> App:
    """An app (``sim.start(detector_app(...))``) running a :class:`ModeDetector` on each node."""

    def app(rt: Runtime) -> ModeDetector:
        return ModeDetector(rt, settings, **kwargs)

    return app
