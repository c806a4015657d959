"""One transfer API for DWCP v3: mode -> streams and congestion control, HDE, AMST.

``await DataPlane(rt).transfer(peer, payload)`` is what components call to
move data. For each transfer it:

1. asks the mode detector (:mod:`novacron.mode`) what kind of link the peer
   sits behind (``hybrid`` until it knows);
2. picks the stream count (:class:`~.policy.StreamController`: the mode's
   range within the config's bounds, then goodput hill climbing) and the
   congestion control (:func:`~.policy.choose_congestion`);
3. encodes the payload with HDE (:mod:`novacron.encoding`): zero-buffer
   elimination and the codec and level the selector predicts fastest for
   this data over this link (so on a fast link it often sends raw), and
   charges the encoding's modelled CPU time to the runtime
   (``rt.compute``: virtual time in the simulator, nothing on the real
   backend, where the work took real time);
4. sends the frame with AMST and, on the receiver, decodes it and hands the
   original bytes to the handler registered for the tag (the receiver's
   decoding time is not charged to the simulated clock: decompression runs
   several times faster than compression and the handler API is
   synchronous);
5. feeds the measured goodput back to the stream controller and to the
   detector (a passive bandwidth sample).

In the simulator a :class:`~novacron.runtime.VirtualPayload` can stand for
the data: give it a :class:`ContentMix` as ``meta`` and HDE's calibrated cost
model predicts the frame size and CPU time instead of compressing bytes
that do not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from novacron.config import DWCPConfig
from novacron.encoding import CostModel, Encoder, encode
from novacron.encoding.features import DataFeatures, estimate
from novacron.encoding.selector import blend
from novacron.runtime import Payload, Runtime, TransferReport, VirtualPayload, payload_size

from .amst import AMST, AMSTReport
from .policy import StreamController, choose_congestion

#: Link rate assumed for a mode before any measurement (bit/s).
DEFAULT_LINK_BPS = {"datacenter": 10e9, "hybrid": 1e9, "internet": 100e6}
UNKNOWN_MODE = "hybrid"
_TAG = "dp:"


@dataclass(frozen=True)
class ContentMix:
    """What a simulated buffer is made of (shares of zero, text-like and random pages)."""

    zero: float = 0.0
    text: float = 0.0
    random: float = 1.0

    def __post_init__(self) -> None:
        shares = (self.zero, self.text, self.random)
        if min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-6:
            raise ValueError(f"content shares must be >= 0 and add up to 1, got {shares}")

    def features(self, size: int) -> DataFeatures:
        return DataFeatures(
            size=size,
            all_zero=self.zero >= 1.0,
            zero_share=self.zero,
            text_share=self.text,
            random_share=self.random,
            entropy_bits=4.5 * self.text + 8.0 * self.random,
            sample_ratio=0.5 * self.text + 1.0 * self.random,
        )


@dataclass(frozen=True)
class _VirtualFrame:
    """What travels in the simulator instead of an encoded frame: the original, by reference."""

    original: VirtualPayload
    codec: str


@dataclass(frozen=True)
class TransferResult:
    """One data-plane transfer, end to end (what reports show per link)."""

    peer: str
    tag: str
    mode: str
    codec: str  # e.g. "zstd-3", "lz4-0", "none", "zero"
    bytes_in: int  # payload bytes
    bytes_out: int  # bytes on the wire (the frame)
    streams: int
    congestion: str
    encode_seconds: float
    amst: AMSTReport
    #: seconds the encoding waited for a free core (simulated nodes with a core count)
    cpu_wait_seconds: float = 0.0

    @property
    def ratio(self) -> float:
        """Wire bytes per payload byte (lower is better)."""
        return self.bytes_out / self.bytes_in if self.bytes_in else 1.0

    @property
    def duration(self) -> float:
        return self.amst.duration + self.encode_seconds + self.cpu_wait_seconds

    @property
    def goodput_bps(self) -> float:
        """Payload bits per second, encoding time included."""
        return self.bytes_in * 8 / self.duration if self.duration > 0 else 0.0


class DataPlane:
    """Mode-aware, compressed, multi-stream transfers for one node."""

    def __init__(
        self,
        rt: Runtime,
        dwcp: DWCPConfig | None = None,
        *,
        detector: Any = None,
        amst: AMST | None = None,
        cost_model: CostModel | None = None,
    ) -> None:
        dwcp = dwcp or DWCPConfig()
        self.rt = rt
        self.detector = detector
        self.amst = amst or AMST(rt)
        self.cost_model = cost_model or CostModel.load()
        self.encoder = Encoder.from_config(dwcp.compression, self.cost_model)
        if hasattr(self.encoder.selector, "pipelined"):
            # This data plane encodes the whole buffer, then sends it: the selector must model
            # the stages in sequence, not overlapped, or it picks codecs slower than the link.
            self.encoder.selector.pipelined = False
        self.compress = dwcp.compression.algorithm != "none"
        self.congestion_algo = dwcp.transport.congestion_algo
        self.controller = StreamController(dwcp.transport.min_streams, dwcp.transport.max_streams)
        self.results: list[TransferResult] = []
        self.mode_changes = 0
        if detector is not None:
            detector.subscribe(self._on_mode_change)

    def _on_mode_change(self, change: Any) -> None:
        """Reconfigure for a peer whose link changed kind: its stream count starts over from
        the new mode's range (congestion control and codec are chosen per transfer anyway)."""
        if change.peer is not None:
            self.controller.forget(change.peer)
            self.mode_changes += 1

    # -- decisions ------------------------------------------------------------
    def mode_of(self, peer: str) -> str:
        """The detected mode of ``peer``; else that of a detected peer in the same site (a
        node's link class is a property of where it sits, so probing one node per site is
        enough); else ``hybrid``, the design's starting assumption."""
        if self.detector is None:
            return UNKNOWN_MODE
        mode = self.detector.mode_of(peer)
        if mode is None:
            site = self.rt.peer_info(peer).site
            for other, other_mode in self.detector.modes.items():
                if other_mode is not None and self.rt.peer_info(other).site == site:
                    mode = other_mode
                    break
        return str(mode) if mode is not None else UNKNOWN_MODE

    def link_bps(self, peer: str, mode: str) -> float:
        """Measured bandwidth to ``peer`` if the detector has one, else the mode's default."""
        latest = self.detector.latest(peer) if self.detector is not None else None
        measured = getattr(latest, "bandwidth_bps", None)
        return measured if measured else DEFAULT_LINK_BPS[mode]

    # -- sending ----------------------------------------------------------------
    async def transfer(self, peer: str, payload: Payload, *, tag: str = "") -> TransferResult:
        mode = self.mode_of(peer)
        streams = self.controller.streams_for(peer, mode)
        congestion = choose_congestion(self.congestion_algo, mode)
        frame, codec, cpu = self._encode(payload, self.link_bps(peer, mode))
        waited = await self.rt.compute(cpu)
        report = await self.amst.send(peer, frame, streams=streams, congestion=congestion, tag=_TAG + tag)
        result = TransferResult(
            peer=peer,
            tag=tag,
            mode=mode,
            codec=codec,
            bytes_in=payload_size(payload),
            bytes_out=payload_size(frame),
            streams=report.streams,
            congestion=report.congestion,
            encode_seconds=cpu,
            amst=report,
            cpu_wait_seconds=waited,
        )
        self.controller.observe(peer, streams, result.goodput_bps)
        if self.detector is not None:
            self.detector.observe_transfer(_as_transfer_report(self.rt.node_id, report))
        self.results.append(result)
        return result

    def _encode(self, payload: Payload, link_bps: float) -> tuple[Payload, str, float]:
        """The frame to send, the codec's name and the modelled CPU seconds."""
        size = payload_size(payload)
        if isinstance(payload, VirtualPayload):
            mix = payload.meta if isinstance(payload.meta, ContentMix) else ContentMix()
            features = mix.features(size)
        else:
            features = estimate(payload) if size else None
        if features is None or not self.compress:
            choice = None
        else:
            choice = self.encoder.selector.choose(features, link_bps)
        if choice is not None and choice.zero:
            codec_name, codec, level = "zero", "none", 0
        elif choice is not None:
            codec_name = _codec_name(choice.codec, choice.level)
            codec, level = choice.codec, choice.level
        else:
            codec_name, codec, level = "none", "none", 0
        cpu = self._cpu_seconds(codec, level, features) if features is not None else 0.0
        if isinstance(payload, VirtualPayload):
            ratio = 0.0 if codec_name == "zero" else (choice.ratio if choice is not None else 1.0)
            out = max(64, round(size * ratio))  # a frame header at least
            return VirtualPayload(out, meta=_VirtualFrame(payload, codec_name)), codec_name, cpu
        return encode(payload, codec, level if codec != "none" else None), codec_name, cpu

    def _cpu_seconds(self, codec: str, level: int, features: DataFeatures) -> float:
        if codec == "none":
            return 0.0
        cost = blend(self.cost_model, codec, level, features.shares())
        return features.size / cost.compress_bytes_per_s

    # -- receiving --------------------------------------------------------------
    def on_receive(self, tag: str, handler: Callable[[str, Payload], None]) -> None:
        """Deliver decoded payloads sent with ``tag`` to ``handler(src, payload)``."""

        def deliver(src: str, frame: Payload) -> None:
            if isinstance(frame, VirtualPayload) and isinstance(frame.meta, _VirtualFrame):
                handler(src, frame.meta.original)
            else:
                handler(src, memoryview(self.encoder.decode(frame)).toreadonly())

        self.amst.on_receive(_TAG + tag, deliver)


def _codec_name(codec: str, level: int) -> str:
    """``zstd-3``, ``lz4-0``; zstd's negative levels as ``zstd-fast5`` (its CLI's ``--fast=5``)."""
    if codec == "none":
        return "none"
    return f"{codec}-{level}" if level >= 0 else f"{codec}-fast{-level}"


def _as_transfer_report(src: str, report: AMSTReport) -> TransferReport:
    return TransferReport(
        src=src,
        dst=report.peer,
        tag=report.tag,
        nbytes=report.nbytes,
        streams=report.streams,
        congestion=report.congestion,
        started=report.started,
        finished=report.finished,
    )
