"""ACP: adaptive consensus. Raft and PBFT over the runtime contract, a replicated
key-value store, a client that records histories, and a linearizability checker."""

from .api import ClientReply, ClientRequest, Command, NullObserver, Observer, StateMachine
from .history import History, Operation
from .sessions import Sessions

__all__ = [
    "ClientReply",
    "ClientRequest",
    "Command",
    "History",
    "NullObserver",
    "Observer",
    "Operation",
    "Sessions",
    "StateMachine",
]
