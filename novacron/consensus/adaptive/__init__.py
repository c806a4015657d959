"""ACP: adaptive consensus. Choose Raft or PBFT, and switch between them at run time.

* :func:`choose_protocol` (``choice.py``): the protocol for a config and a network mode;
  :func:`start_member` starts a fixed-protocol member (or, with ``"adaptive"``, the host).
* :class:`AdaptiveConsensus` (``host.py``): a member that runs one protocol instance per
  *epoch* and switches protocol by a committed decision, handing the state over by snapshot.
* ``handover.py`` (freezing the state at the switch), ``epoch_runtime.py`` (each epoch's
  own messages and storage), ``observer.py`` (one index space across epochs) and
  ``messages.py`` (the envelopes, hints and start records on the wire).
"""

from .choice import PROTOCOLS, choose_protocol, start_member
from .epoch_runtime import EpochRuntime, EpochStorage
from .handover import EpochSessions
from .host import EPOCH_KEY, AdaptiveConsensus
from .messages import (
    RESERVED_CLIENT,
    EpochEnvelope,
    EpochHint,
    EpochRecord,
    EpochStart,
    EpochStartRequest,
    SwitchProtocol,
)
from .observer import TERM_STRIDE, EpochObserver

__all__ = [
    "EPOCH_KEY",
    "PROTOCOLS",
    "RESERVED_CLIENT",
    "TERM_STRIDE",
    "AdaptiveConsensus",
    "EpochEnvelope",
    "EpochHint",
    "EpochObserver",
    "EpochRecord",
    "EpochRuntime",
    "EpochSessions",
    "EpochStart",
    "EpochStartRequest",
    "EpochStorage",
    "SwitchProtocol",
    "choose_protocol",
    "start_member",
]
