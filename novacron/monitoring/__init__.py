"""Monitoring: liveness, RTT and (later) metrics export."""

from .heartbeat import Heartbeat, HeartbeatAck, HeartbeatService, PeerStats

__all__ = ["Heartbeat", "HeartbeatAck", "HeartbeatService", "PeerStats"]
