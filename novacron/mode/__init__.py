"""Network-mode detection for DWCP v3: is a peer behind a datacenter, a hybrid or an internet link?

Every protocol that moves data tunes itself to the link: AMST picks its
stream count and congestion control, HDE its codec, later consensus its
protocol and timeouts. This package measures each peer through the runtime
(RTT, jitter and loss with probe messages; bandwidth with probe transfers
and from real transfers), classifies one window per ``detection_interval``
with the original design's thresholds, and publishes a :class:`ModeChange`
only after K consecutive windows agree, so borderline links do not flap.

Read top-down:

* :mod:`.modes`: :class:`Mode`, the thresholds and :func:`classify` (pure);
* :mod:`.measurement`: a window's statistics, :class:`PeerEstimator` (pure);
* :mod:`.hysteresis`: :class:`ModeTracker`, classification + K windows (pure);
* :mod:`.events`: :class:`ModeChange`, subscribers, time-to-switch records;
* :mod:`.settings`: :class:`DetectionSettings` from the ``dwcp`` config;
* :mod:`.detector`: :class:`ModeDetector`, the probing service (I/O via ``rt``).

Typical use::

    detector = ModeDetector.from_config(rt, load_config().dwcp)
    detector.subscribe(lambda change: transport.reconfigure(change.peer, change.new))
"""

from .detector import ModeDetector, PayloadFactory, detector_app
from .events import ModeCallback, ModeChange, SwitchRecord
from .hysteresis import DEFAULT_HYSTERESIS, ModeTracker, Transition
from .measurement import Measurement, PeerEstimator, size_differential_bps
from .messages import PROBE_TRANSFER_TAG, ModeProbe, ModeProbeAck
from .modes import DEFAULT_THRESHOLDS, Mode, Thresholds, classify, most_conservative, parse_mode
from .settings import STATIC_DEFAULT_MODE, DetectionSettings

__all__ = [
    "DEFAULT_HYSTERESIS",
    "DEFAULT_THRESHOLDS",
    "PROBE_TRANSFER_TAG",
    "STATIC_DEFAULT_MODE",
    "DetectionSettings",
    "Measurement",
    "Mode",
    "ModeCallback",
    "ModeChange",
    "ModeDetector",
    "ModeProbe",
    "ModeProbeAck",
    "ModeTracker",
    "PayloadFactory",
    "PeerEstimator",
    "SwitchRecord",
    "Thresholds",
    "Transition",
    "classify",
    "detector_app",
    "most_conservative",
    "parse_mode",
    "size_differential_bps",
]
