"""A client of a cluster started with ``novacron cluster up``, from any asyncio program.

The members accept connections only from ids they know, so a client takes
one of the cluster's reserved *client slots*: it listens on the slot's port
(for the replies) and binding that port is what reserves it; a slot in use
by another client fails to bind and the next one is tried.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from novacron.consensus import History
from novacron.consensus.client import KVClient

from .directory import PeerDirectory
from .runtime import AsyncioRuntime


def load_manifest(directory: Path) -> dict:
    path = Path(directory) / "cluster.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"no cluster in {directory} (no cluster.json): run `novacron cluster up` first"
        ) from None


def reply_quorum(manifest: dict) -> int:
    """Matching replies a client needs: 1 from a Raft leader, f + 1 under PBFT."""
    n = len(manifest["members"])
    return (n - 1) // 3 + 1 if manifest["protocol"] == "pbft" else 1


@contextlib.asynccontextmanager
async def client_runtime(directory: Path) -> AsyncIterator[tuple[AsyncioRuntime, dict, str]]:
    """A runtime on a free client slot of the cluster in ``directory``: ``(runtime, manifest,
    slot id)``; closed on exit."""
    manifest = load_manifest(directory)
    host = manifest["host"]
    peers = PeerDirectory()
    for member in manifest["members"]:
        peers.register(member["id"], host, member["port"])
    rt = None
    errors = []
    for slot, port in sorted(manifest["clients"].items()):
        candidate = AsyncioRuntime(slot, directory=peers, host=host, port=port)
        try:
            await candidate.start()
        except OSError as exc:
            errors.append(f"{slot}: {exc}")
            continue
        rt = candidate
        break
    if rt is None:
        raise RuntimeError(f"every client slot of the cluster is taken ({'; '.join(errors)})")
    try:
        yield rt, manifest, slot
    finally:
        await rt.close()


@contextlib.asynccontextmanager
async def connect(
    directory: Path,
    *,
    timeout: float = 5.0,
    retry_interval: float = 0.25,
    history: History | None = None,
) -> AsyncIterator[KVClient]:
    """A :class:`KVClient` on a free client slot of the cluster in ``directory``."""
    async with client_runtime(directory) as (rt, manifest, slot):
        yield KVClient(
            rt,
            [m["id"] for m in manifest["members"]],
            history=history,
            quorum=reply_quorum(manifest),
            timeout=timeout,
            retry_interval=retry_interval,
            client_id=f"{slot}/{rt.random.getrandbits(32):08x}",
        )
