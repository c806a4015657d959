"""Deterministic simulation testing (DST) of the consensus protocols: seeded fault
campaigns with a client workload, checked for linearizability and the protocols'
safety properties; and of ASS state synchronisation (``protocol="ass"``, :mod:`.sync_target`),
checked for convergence, no lost write and no resurrection. Start with :func:`run_campaign`
or ``novacron dst``."""

from .campaign import FAULT_KINDS, CampaignConfig, SeedResult, run_campaign, run_seed
from .checks import Violation
from .recorder import Recorder
from .targets import BYZANTINE_KINDS, PBFTTarget, RaftTarget
from .workload import Workload

__all__ = [
    "BYZANTINE_KINDS",
    "FAULT_KINDS",
    "CampaignConfig",
    "PBFTTarget",
    "RaftTarget",
    "Recorder",
    "SeedResult",
    "Violation",
    "Workload",
    "run_campaign",
    "run_seed",
]
