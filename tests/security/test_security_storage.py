"""Node state encrypted at rest: the storage contract holds through the encryption, nothing of a
value reaches the disk, a record altered or moved fails naming itself, and a store opened with the
wrong key, or over data written in the clear, is refused at once."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
import yaml

from novacron.backends.node import open_storage
from novacron.backends.storage import SQLiteStorage
from novacron.config import config_from_mapping
from novacron.runtime import Storage
from novacron.security import CorruptRecord, EncryptedStorage, StorageKeyError, load_key
from novacron.security.storage import CANARY

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
SECRET = b"vm/42 runs on host-7 with the root password hunter2"


def sealed_file(tmp_path, key=KEY):
    inner = SQLiteStorage(tmp_path / "node.sqlite3")
    return EncryptedStorage(inner, key), inner


def sync(storage) -> None:
    asyncio.run(storage.sync())


def test_values_and_log_records_round_trip_and_never_reach_the_disk_in_the_clear(tmp_path):
    storage, inner = sealed_file(tmp_path)
    assert isinstance(storage, Storage)
    storage.put("vm/42", SECRET)
    assert storage.append([SECRET + b"-1", SECRET + b"-2"]) == 2
    sync(storage)
    assert storage.get("vm/42") == SECRET and storage.get("absent") is None
    assert storage.entries(1) == [SECRET + b"-1", SECRET + b"-2"]
    assert storage.keys() == ["vm/42"]  # the canary is the wrapper's own
    inner.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"hunter2" not in on_disk and b"vm/42" in on_disk  # names stay readable, values do not


def test_the_log_operations_keep_their_contract_through_the_encryption(tmp_path):
    storage, _ = sealed_file(tmp_path)
    storage.append([b"a", b"b", b"c", b"d"])
    storage.truncate(3)
    assert (storage.first_index, storage.last_index) == (1, 2)
    storage.append([b"c2"])
    storage.compact(2)
    assert storage.entries(2) == [b"b", b"c2"]  # each record opened at its own index
    with pytest.raises(ValueError, match="compacted"):
        storage.entries(1)
    storage.reset(10)
    assert storage.append([b"x"]) == 10 and storage.entries(10) == [b"x"]


def test_a_restart_with_the_same_key_reads_everything_back(tmp_path):
    storage, inner = sealed_file(tmp_path)
    storage.put("k", b"v")
    storage.append([b"r"])
    sync(storage)
    inner.close()
    again, _ = sealed_file(tmp_path)
    assert again.get("k") == b"v" and again.entries(1) == [b"r"]


def test_another_key_or_data_written_in_the_clear_is_refused_at_once(tmp_path):
    storage, inner = sealed_file(tmp_path)
    storage.put("k", b"v")
    sync(storage)
    inner.close()
    with pytest.raises(StorageKeyError, match="encrypted with another key"):
        sealed_file(tmp_path, OTHER)
    plain = SQLiteStorage(tmp_path / "plain.sqlite3")
    plain.put("k", b"in the clear")
    with pytest.raises(StorageKeyError, match="written in the clear"):
        EncryptedStorage(plain, KEY)


def test_an_altered_or_moved_record_fails_naming_itself(tmp_path):
    storage, inner = sealed_file(tmp_path)
    storage.put("a", b"alpha")
    storage.put("b", b"beta")
    storage.append([b"one", b"two"])
    sync(storage)
    inner.close()
    db = sqlite3.connect(tmp_path / "node.sqlite3")
    a = db.execute("SELECT value FROM kv WHERE key = 'a'").fetchone()[0]
    db.execute("UPDATE kv SET value = ? WHERE key = 'b'", (a,))  # a's sealed value moved under b
    two = bytearray(db.execute("SELECT data FROM log WHERE idx = 2").fetchone()[0])
    two[-1] ^= 1
    db.execute("UPDATE log SET data = ? WHERE idx = 2", (bytes(two),))
    db.execute("INSERT INTO kv VALUES ('c', ?)", (b"planted in the clear",))
    db.commit()
    db.close()
    storage, _ = sealed_file(tmp_path)
    assert storage.get("a") == b"alpha" and storage.entries(1, 2) == [b"one"]
    with pytest.raises(CorruptRecord, match="entry 'b' fails its authentication"):
        storage.get("b")
    with pytest.raises(CorruptRecord, match="log record 2 fails its authentication"):
        storage.entries(1)
    with pytest.raises(CorruptRecord, match="entry 'c' is not an encrypted record"):
        storage.get("c")


def test_key_files_hold_raw_or_hex_keys_and_a_bad_one_says_how_to_make_one(tmp_path):
    raw, hexa, bad = tmp_path / "raw", tmp_path / "hex", tmp_path / "bad"
    raw.write_bytes(KEY)
    hexa.write_text(KEY.hex() + "\n")
    bad.write_text("too short")
    assert load_key(raw) == KEY == load_key(hexa)
    with pytest.raises(StorageKeyError, match=r"must hold 32 bytes.*head -c 32 /dev/urandom"):
        load_key(bad)
    with pytest.raises(StorageKeyError, match="cannot read the key file"):
        load_key(tmp_path / "missing")


def test_a_node_encrypts_its_storage_when_its_config_has_a_key_file(tmp_path):
    key = tmp_path / "keys" / "node.key"
    key.parent.mkdir()
    key.write_bytes(KEY)
    data = tmp_path / "data"

    def config(enable: bool, key_file: str):
        text = (
            f"system: {{node_id: n1, data_dir: {data}}}\n"
            f"security: {{enable_encryption: {str(enable).lower()}, encryption_key_file: '{key_file}'}}\n"
        )
        return config_from_mapping(yaml.safe_load(text), env={})

    storage = open_storage(config(True, str(key)))
    assert isinstance(storage, EncryptedStorage) and CANARY in storage.inner.keys()
    storage.put("x", SECRET)
    sync(storage)
    storage.close()
    assert b"hunter2" not in b"".join(p.read_bytes() for p in data.iterdir())
    with pytest.raises(StorageKeyError, match="this storage is encrypted: the node needs"):
        open_storage(config(False, ""))
    assert open_storage(config(True, str(key))).get("x") == SECRET
