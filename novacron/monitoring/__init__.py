"""Monitoring: liveness and RTT (heartbeats), self-describing counters, and Prometheus metrics.

:mod:`.metrics` (a ``prometheus_client`` collector over a node's components) is not imported here:
protocol code that only counts (:mod:`.counters`) or beats need not load prometheus_client.
"""

from .heartbeat import Heartbeat, HeartbeatAck, HeartbeatService, PeerStats

__all__ = ["Heartbeat", "HeartbeatAck", "HeartbeatService", "PeerStats"]
