"""Auto-converge: slow the guest down when pre-copy rounds do not converge (QEMU's rule).

At every dirty-log sync QEMU compares the bytes the guest dirtied during the period with the bytes
migration transferred; when dirtied > ``trigger`` x transferred for the second time, it throttles
the vCPUs: first to ``initial``, then ``increment`` more each time, up to ``maximum``
(``migration_trigger_throttle`` and ``mig_throttle_guest_down`` in QEMU's migration/ram.c).
Pure state: fed numbers, answers the throttle to apply.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AutoConverge:
    trigger: float = 0.50
    initial: float = 0.20
    increment: float = 0.10
    maximum: float = 0.99
    throttle: float = 0.0
    _high: int = 0
    steps: int = 0

    def observe(self, dirtied_bytes: int, transferred_bytes: int) -> float:
        """One sync period's figures; returns the throttle to apply from now on."""
        if dirtied_bytes > self.trigger * transferred_bytes:
            self._high += 1
            if self._high >= 2:
                self._high = 0
                self.steps += 1
                if self.throttle == 0.0:
                    self.throttle = self.initial
                else:
                    self.throttle = min(self.maximum, self.throttle + self.increment)
        return self.throttle
