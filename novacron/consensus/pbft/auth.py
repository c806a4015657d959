"""Keys and message authentication: Ed25519 signatures or MAC authenticators.

Trust assumption (document it to operators): every replica knows every
member's Ed25519 *public* key and shares one secret HMAC key with each other
member; those keys were distributed out of band by whoever configures the
cluster (for tests and simulations, :meth:`Keyring.generate` derives them
from a seed, which is fine there and nowhere else). A replica's private key
and its pairwise MAC keys never leave it. Up to f replicas may be Byzantine
and know their own keys (and the MAC keys they share); nobody can forge a
correct replica's signature.

Two modes (``PBFTSettings.auth``):

* ``"ed25519"``: every message is signed; every receiver verifies.
* ``"mac"``: the paper's authenticators (a vector of HMAC-SHA256 values, one
  per member, each under the pairwise key) for the messages that never need
  to convince a third party (COMMIT, STATUS, state transfer). Messages that
  can be embedded in another replica's proof (PRE-PREPARE, PREPARE,
  CHECKPOINT, VIEW-CHANGE, NEW-VIEW) are *signed even in MAC mode*: the
  paper's MAC-only view change (view-change acks, TOCS 2002 §3.2) is much
  more intricate, and signatures keep the proofs checkable by anyone. MAC
  mode therefore saves the COMMIT verifications (n-1 per batch per replica),
  not all of them; its evidence of a COMMIT equivocation convinces only the
  replica that saw it.

Verifying is the expensive part (~50-100 µs per Ed25519 check), and in the
simulator every replica checks the same messages, so verification results
are memoised in a bounded cache keyed by (public key, body, signature):
a pure function's result, correct to share.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

#: Signatures and MACs are over this prefix + body, so PBFT signatures cannot be replayed elsewhere.
SIGN_DOMAIN = b"novacron-pbft-v1\x00"
MAC_BYTES = 16  # truncated HMAC-SHA256, as the paper truncates its MACs
msgpack_encoder = msgspec.msgpack.Encoder()


class AuthError(ValueError):
    """A message failed authentication (the reason is in the text)."""


class Keyring:
    """Public keys of everyone, and the private material this process holds.

    In a simulation one keyring holds every node's private key (each replica
    uses only its own); a real node loads its own with :meth:`load`.
    """

    def __init__(
        self,
        public: dict[str, bytes],
        private: dict[str, bytes] | None = None,
        mac_keys: dict[tuple[str, str], bytes] | None = None,
    ) -> None:
        self._public_raw = dict(public)
        self._public = {name: Ed25519PublicKey.from_public_bytes(raw) for name, raw in public.items()}
        self._private = {
            name: Ed25519PrivateKey.from_private_bytes(raw) for name, raw in (private or {}).items()
        }
        self._private_raw = dict(private or {})
        self._mac = {tuple(sorted(pair)): key for pair, key in (mac_keys or {}).items()}

    @classmethod
    def generate(cls, names: Iterable[str], seed: bytes | str | int = 0) -> Keyring:
        """Deterministic keys for tests and simulations: the same seed gives the same keys."""
        seed_bytes = str(seed).encode() if not isinstance(seed, bytes) else seed
        names = sorted(set(names))
        private = {n: hashlib.sha256(b"ed25519|" + seed_bytes + b"|" + n.encode()).digest() for n in names}
        public = {
            n: Ed25519PrivateKey.from_private_bytes(k)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
            for n, k in private.items()
        }
        macs = {
            (a, b): hashlib.sha256(b"mac|" + seed_bytes + b"|" + a.encode() + b"|" + b.encode()).digest()
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        }
        return cls(public, private, macs)

    def save(self, directory: Path | str, node: str) -> None:
        """Write what ``node`` needs: every public key, its private key, its pairwise MAC keys."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        for name, raw in self._public_raw.items():
            (root / f"{name}.pub").write_bytes(raw)
        if node in self._private_raw:
            (root / f"{node}.key").write_bytes(self._private_raw[node])
        for (a, b), key in self._mac.items():
            if node in (a, b):
                (root / f"{a}~{b}.mac").write_bytes(key)

    @classmethod
    def load(cls, directory: Path | str) -> Keyring:
        """Read a directory written by :meth:`save` (``*.pub``, ``*.key``, ``a~b.mac``; raw bytes)."""
        root = Path(directory)
        public = {p.stem: p.read_bytes() for p in sorted(root.glob("*.pub"))}
        private = {p.stem: p.read_bytes() for p in sorted(root.glob("*.key"))}
        macs = {tuple(p.stem.split("~", 1)): p.read_bytes() for p in sorted(root.glob("*.mac"))}
        return cls(public, private, macs)  # type: ignore[arg-type]

    def knows(self, name: str) -> bool:
        return name in self._public

    def public_key(self, name: str) -> Ed25519PublicKey:
        try:
            return self._public[name]
        except KeyError:
            raise AuthError(f"no public key for {name!r}") from None

    def public_bytes(self, name: str) -> bytes:
        return self._public_raw[name]

    def private_key(self, name: str) -> Ed25519PrivateKey:
        try:
            return self._private[name]
        except KeyError:
            raise AuthError(f"this keyring holds no private key for {name!r}") from None

    def mac_key(self, a: str, b: str) -> bytes:
        try:
            return self._mac[(a, b) if a <= b else (b, a)]
        except KeyError:
            raise AuthError(f"no MAC key shared by {a!r} and {b!r}") from None


class _VerifyCache:
    """A bounded memo of signature checks (both outcomes)."""

    def __init__(self, size: int = 65_536) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[bytes, bytes, bytes], bool] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def check(self, public_raw: bytes, key: Ed25519PublicKey, body: bytes, sig: bytes) -> bool:
        entry = (public_raw, body, sig)
        found = self._entries.get(entry)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        try:
            key.verify(sig, SIGN_DOMAIN + body)
            ok = True
        except InvalidSignature:
            ok = False
        self._entries[entry] = ok
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return ok


#: Shared by every replica in the process (a pure function's results).
verify_cache = _VerifyCache()


class Authenticator:
    """Signs and checks on behalf of one replica (``me``) of ``members``."""

    def __init__(self, keyring: Keyring, me: str, members: Sequence[str]) -> None:
        self.keyring = keyring
        self.me = me
        self.members = tuple(members)
        self._index = {m: i for i, m in enumerate(self.members)}
        self._private = keyring.private_key(me)
        self._mac_keys = {m: keyring.mac_key(me, m) for m in self.members if m != me}

    # -- signatures ------------------------------------------------------------------------------
    def sign(self, body: bytes) -> bytes:
        return self._private.sign(SIGN_DOMAIN + body)

    def verify(self, sender: str, body: bytes, sig: bytes) -> None:
        """Raises :class:`AuthError` unless ``sig`` is ``sender``'s signature on ``body``."""
        if not self.keyring.knows(sender):
            raise AuthError(f"unknown signer {sender!r}")
        if len(sig) != 64:
            raise AuthError(f"signature of {sender} has {len(sig)} bytes, not 64")
        if not verify_cache.check(
            self.keyring.public_bytes(sender), self.keyring.public_key(sender), body, sig
        ):
            raise AuthError(f"bad signature claimed by {sender}")

    def valid(self, sender: str, body: bytes, sig: bytes) -> bool:
        try:
            self.verify(sender, body, sig)
        except AuthError:
            return False
        return True

    # -- MAC authenticators ------------------------------------------------------------------------
    def authenticator(self, body: bytes) -> tuple[bytes, ...]:
        """One MAC per member, in member order (our own slot is empty)."""
        return tuple(
            b""
            if m == self.me
            else hmac.new(self._mac_keys[m], SIGN_DOMAIN + body, "sha256").digest()[:MAC_BYTES]
            for m in self.members
        )

    def check_authenticator(self, sender: str, body: bytes, macs: Sequence[bytes]) -> None:
        """Raises :class:`AuthError` unless our entry of ``macs`` is ``sender``'s MAC of ``body`` for us."""
        if sender not in self._mac_keys:
            raise AuthError(f"no MAC key shared with {sender!r}")
        if len(macs) != len(self.members):
            raise AuthError(f"authenticator from {sender} has {len(macs)} MACs, expected {len(self.members)}")
        expected = hmac.new(self._mac_keys[sender], SIGN_DOMAIN + body, "sha256").digest()[:MAC_BYTES]
        if not hmac.compare_digest(expected, macs[self._index[self.me]]):
            raise AuthError(f"bad MAC claimed by {sender}")


def request_body(client: str, seq: int, op: bytes, read: bool) -> bytes:
    """What a client signs for a request (``ClientRequest.auth``)."""
    return b"request|" + msgpack_encoder.encode([client, seq, op, read])


def sign_request(keyring: Keyring, client: str, seq: int, op: bytes, read: bool = False) -> bytes:
    """The ``auth`` bytes of a request from ``client`` (which must hold its private key)."""
    return keyring.private_key(client).sign(SIGN_DOMAIN + request_body(client, seq, op, read))
