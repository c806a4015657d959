"""PBFT: Practical Byzantine Fault Tolerance (Castro & Liskov, OSDI 1999 / TOCS 2002).

n = 3f + 1 replicas order client requests despite up to f Byzantine ones.
Read top-down: :mod:`.settings` (knobs), :mod:`.messages` (what is sent),
:mod:`.auth` (keys, signatures, MAC vectors), :mod:`.log` (slots and quorum
certificates), :mod:`.checkpoint`, :mod:`.viewchange`, :mod:`.core` (the
pure protocol state machine), :mod:`.node` (the replica on a runtime) and
:mod:`.byzantine` (faulty behaviours for fault campaigns).
"""

from .auth import Authenticator, AuthError, Keyring, sign_request
from .byzantine import KINDS as BYZANTINE_KINDS
from .byzantine import Byzantine
from .core import Evidence, Executable, PBFTCore
from .log import ProofError, Quorum
from .messages import PBFTMessage, Signed
from .node import PBFTReplica
from .settings import PBFTSettings
from .viewchange import compute_new_view, verify_view_change

__all__ = [
    "BYZANTINE_KINDS",
    "AuthError",
    "Authenticator",
    "Byzantine",
    "Evidence",
    "Executable",
    "Keyring",
    "PBFTCore",
    "PBFTMessage",
    "PBFTReplica",
    "PBFTSettings",
    "ProofError",
    "Quorum",
    "Signed",
    "compute_new_view",
    "sign_request",
    "verify_view_change",
]
