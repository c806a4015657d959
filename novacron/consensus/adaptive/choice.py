"""ACP's choice of protocol, and starting a consensus member of either kind (or the adaptive host).

Raft is the fast choice among trusted nodes on a good network; PBFT costs
three message delays, quadratic messages and signatures, but survives up
to f Byzantine replicas, which is what nodes spread over the internet (or
any deployment that asks for ``byzantine_tolerance``) need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from novacron.config import ConsensusConfig
from novacron.runtime import Runtime

from ..api import NullObserver, Observer, StateMachine

PROTOCOLS = ("raft", "pbft")


def choose_protocol(config: ConsensusConfig, mode: str | None = None) -> str:
    """``raft`` or ``pbft`` for this configuration and network mode.

    ``byzantine_tolerance`` always means PBFT; an explicit ``protocol`` is
    honoured; ``auto`` picks Raft in datacenter mode and PBFT in internet or
    hybrid mode (and Raft while the mode is still unknown).
    """
    if config.byzantine_tolerance:
        return "pbft"
    if config.protocol in PROTOCOLS:
        return config.protocol
    if config.protocol == "auto":
        return "raft" if mode in (None, "", "datacenter") else "pbft"
    raise ValueError(f"consensus protocol {config.protocol!r} is not implemented (choose raft, pbft or auto)")


def start_member(
    rt: Runtime,
    protocol: str,
    members: Sequence[str],
    state_machine: StateMachine,
    *,
    config: ConsensusConfig | None = None,
    mode: str = "datacenter",
    observer: Observer | None = None,
    keyring: Any = None,
) -> Any:
    """Start this node's replica of ``protocol`` (a RaftNode or a PBFTReplica).

    ``protocol="adaptive"`` starts an :class:`~.host.AdaptiveConsensus` instead: the
    protocol is then chosen by :func:`choose_protocol` and may be switched at run time.

    Timeouts come from ``config`` when given (``heartbeat_interval``,
    ``election_timeout``), else from the mode's defaults. PBFT needs a
    ``keyring`` holding this node's signing key and every member's public key.
    """
    if protocol == "adaptive":
        from .host import AdaptiveConsensus

        return AdaptiveConsensus(
            rt, members, state_machine, config=config, mode=mode, keyring=keyring, observer=observer
        )
    observer = observer if observer is not None else NullObserver()
    members = list(members)
    if protocol == "raft":
        from ..raft import RaftNode, RaftSettings

        settings = RaftSettings.from_config(config) if config is not None else RaftSettings.for_mode(mode)
        return RaftNode(rt, members, state_machine, settings, observer=observer)
    if protocol == "pbft":
        from ..pbft import Keyring, PBFTReplica, PBFTSettings

        settings = PBFTSettings.from_config(config) if config is not None else PBFTSettings.for_mode(mode)
        if keyring is None:
            raise ValueError("a PBFT member needs a keyring (its signing key and the members' public keys)")
        assert isinstance(keyring, Keyring)
        return PBFTReplica(
            rt,
            members=members,
            state_machine=state_machine,
            settings=settings,
            keyring=keyring,
            observer=observer,
        )
    raise ValueError(f"unknown consensus protocol {protocol!r}: choose raft, pbft or adaptive")
