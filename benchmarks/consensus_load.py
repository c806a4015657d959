"""Closed-loop load for replicated key-value services: the one harness both systems are driven by.

``C`` logical clients each issue 10-byte ``put(key, value)`` commands one after another:
a client sends its next command only when the previous one has been committed and
applied (closed loop, as YCSB and Jepsen clients do), so ``C`` is also the number of
commands in flight. Everything starts at one instant; commands that complete during
the warm-up are discarded (connections, leader discovery, caches, JIT-free Python's
first-call costs), and the measured window counts every command that *completes*
inside it, with its latency from submit to acknowledgement (``time.perf_counter``).

Two drivers share the workload (:func:`key_for`, :func:`value_for`) and the
bookkeeping (:class:`Tally`, :class:`LoadResult`), because the two systems offer
two calling styles:

* :func:`run_async` — one coroutine per client awaiting ``submit(key, value)``
  (NovaCron's ``KVClient.put``);
* :func:`run_callbacks` — one callback chain per client: ``submit(key, value, done)``
  returns at once and ``done(error)`` is called on commit (PySyncObj's
  ``callback=`` style, fired on its tick thread). An asyncio wrapper around it
  would add a thread hop per command and so tax PySyncObj for our harness.

Tallies from several processes merge (:meth:`Tally.merge`) so that load spread over
several processes is summarised exactly as load from one.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

VALUE_SIZE = 10
KEYS_PER_CLIENT = 1000

AsyncSubmit = Callable[[str, bytes], Awaitable[object]]
Done = Callable[[BaseException | None], None]
CallbackSubmit = Callable[[str, bytes, Done], object]


def key_for(client: int, n: int) -> str:
    """Client ``client``'s ``n``-th key: each client cycles over its own 1000 keys (no contention)."""
    return f"k{client}-{n % KEYS_PER_CLIENT}"


def value_for(n: int) -> bytes:
    """A 10-byte value (the command's payload; the key travels beside it)."""
    return b"%010d" % (n % 10**VALUE_SIZE)


@dataclass
class Tally:
    """What happened in the measured window: latencies (ms) of completed commands, failures."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0  # definite failures (rejected, not the leader, queue full, ...)
    timeouts: int = 0  # no answer in time: the outcome is unknown
    stuck: int = 0  # clients still waiting at the end for longer than the timeout

    @classmethod
    def merge(cls, tallies: Iterable[Tally]) -> Tally:
        out = cls()
        for t in tallies:
            out.latencies_ms.extend(t.latencies_ms)
            out.errors += t.errors
            out.timeouts += t.timeouts
            out.stuck += t.stuck
        return out

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict) -> Tally:
        return cls(**raw)


@dataclass
class LoadResult:
    system: str
    clients: int
    seconds: float
    ops: int
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    timeouts: int

    @classmethod
    def of(cls, system: str, clients: int, seconds: float, tally: Tally) -> LoadResult:
        lat = np.asarray(tally.latencies_ms, dtype=float)
        p50, p99, top = (np.percentile(lat, [50, 99, 100]).tolist()) if lat.size else (np.nan,) * 3
        return cls(
            system=system,
            clients=clients,
            seconds=seconds,
            ops=int(lat.size),
            ops_per_s=lat.size / seconds,
            p50_ms=p50,
            p99_ms=p99,
            max_ms=top,
            errors=tally.errors,
            timeouts=tally.timeouts + tally.stuck,
        )

    def row(self) -> dict:
        return {
            "system": self.system,
            "clients": self.clients,
            "ops/s": round(self.ops_per_s),
            "p50 ms": round(self.p50_ms, 2),
            "p99 ms": round(self.p99_ms, 2),
            "max ms": round(self.max_ms, 1),
            "errors": self.errors,
            "timeouts": self.timeouts,
        }


class _Window:
    """The warm-up and measured window, in ``time.perf_counter`` seconds."""

    def __init__(self, start: float, warmup: float, seconds: float) -> None:
        self.measure_from = start + warmup
        self.until = self.measure_from + seconds

    def counts(self, finished_at: float) -> bool:
        return self.measure_from <= finished_at < self.until


async def run_async(
    submits: Sequence[AsyncSubmit],
    *,
    warmup: float = 2.0,
    seconds: float = 10.0,
    client_ids: Sequence[int] | None = None,
) -> Tally:
    """Drive one client per ``submits[i]`` (each is awaited one command at a time).

    A ``TimeoutError`` (NovaCron's ``OutcomeUnknown`` is one) counts as a timeout,
    any other exception as an error; the client then goes on with its next command.
    """
    ids = list(client_ids) if client_ids is not None else list(range(len(submits)))
    window = _Window(time.perf_counter(), warmup, seconds)
    tally = Tally()

    async def client(cid: int, submit: AsyncSubmit) -> None:
        n = 0
        while (started := time.perf_counter()) < window.until:
            outcome = "ok"
            try:
                await submit(key_for(cid, n), value_for(n))
            except TimeoutError:
                outcome = "timeout"
            except Exception:  # noqa: BLE001 - a failed command is data, not a crash
                outcome = "error"
            n += 1
            now = time.perf_counter()
            if window.counts(now):
                if outcome == "ok":
                    tally.latencies_ms.append((now - started) * 1e3)
                elif outcome == "timeout":
                    tally.timeouts += 1
                else:
                    tally.errors += 1

    await asyncio.gather(*(client(cid, submit) for cid, submit in zip(ids, submits, strict=True)))
    return tally


def run_callbacks(
    submit: CallbackSubmit,
    client_ids: Sequence[int],
    *,
    start_at: float | None = None,
    warmup: float = 2.0,
    seconds: float = 10.0,
    timeout: float = 5.0,
) -> Tally:
    """Drive ``len(client_ids)`` callback-chain clients; blocks until the window is over.

    ``start_at`` is a ``time.time()`` instant (shared by processes on one machine)
    at which every client sends its first command, so that several processes can
    measure the same window. ``done`` may be called on any thread, or synchronously
    from inside ``submit``; a client whose command gets no ``done`` for ``timeout``
    seconds by the end of the window counts as stuck (a timeout).
    """
    lock = threading.Lock()
    tally = Tally()
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    window = _Window(time.perf_counter(), warmup, seconds)
    next_n = dict.fromkeys(client_ids, 0)
    sent_at = dict.fromkeys(client_ids, 0.0)
    in_submit = dict.fromkeys(client_ids, False)
    again = dict.fromkeys(client_ids, False)

    def issue(cid: int) -> None:
        # A trampoline: a ``done`` called from inside ``submit`` (an immediate error)
        # only flags ``again``, so that a failing client loops here instead of recursing.
        while True:
            with lock:
                n = next_n[cid]
                next_n[cid] = n + 1
                in_submit[cid], again[cid] = True, False
                sent_at[cid] = time.perf_counter()
            submit(key_for(cid, n), value_for(n), lambda error: finished(cid, error))
            with lock:
                in_submit[cid] = False
                if not again[cid]:
                    return

    def finished(cid: int, error: BaseException | None) -> None:
        now = time.perf_counter()
        with lock:
            if window.counts(now):
                if error is None:
                    tally.latencies_ms.append((now - sent_at[cid]) * 1e3)
                elif isinstance(error, TimeoutError):
                    tally.timeouts += 1
                else:
                    tally.errors += 1
            sent_at[cid] = 0.0
            if now >= window.until:
                return
            if in_submit[cid]:
                again[cid] = True
                return
        issue(cid)

    for cid in client_ids:
        issue(cid)
    time.sleep(max(0.0, window.until - time.perf_counter()))
    with lock:
        end = time.perf_counter()
        tally.stuck = sum(1 for t in sent_at.values() if t and end - t > timeout)
        return Tally(list(tally.latencies_ms), tally.errors, tally.timeouts, tally.stuck)


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The closed-loop load's options, as every loopback-cluster benchmark takes them."""
    parser.add_argument("--clients", type=int, default=32, help="concurrent closed-loop clients (32)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds discarded first (2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds (10)")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-command timeout, seconds (5)")
