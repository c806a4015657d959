"""The probe messages of mode detection.

A probe carries the prober's send time and the answer echoes it back, so the
RTT is computed on the prober's clock alone: clock skew between the two
nodes never enters the sample (as in :mod:`novacron.monitoring.heartbeat`).
Bandwidth probes are bulk transfers tagged :data:`PROBE_TRANSFER_TAG`, which
every detector accepts and discards.
"""

from __future__ import annotations

from novacron.runtime import Message

#: The transfer tag of bandwidth probes (receivers drop the payload).
PROBE_TRANSFER_TAG = "mode-probe"


class ModeProbe(Message, tag="mode-probe"):
    seq: int
    sent_at: float


class ModeProbeAck(Message, tag="mode-probe-ack"):
    seq: int
    sent_at: float
