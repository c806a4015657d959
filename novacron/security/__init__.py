"""Security: what protects a node's state and its peers' identities.

* :mod:`.storage`: node state encrypted at rest (AES-256-GCM over the storage contract),
  ``security.enable_encryption`` with ``security.encryption_key_file``.

Transport security lives where the sockets are: TLS/mTLS in ``novacron.backends.tls`` (a node
certificate's common name is its id); PBFT's message signatures in ``novacron.consensus.pbft``.
"""

from .storage import CorruptRecord, EncryptedStorage, StorageKeyError, load_key

__all__ = ["CorruptRecord", "EncryptedStorage", "StorageKeyError", "load_key"]
