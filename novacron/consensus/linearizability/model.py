"""The sequential specification one key must follow: a register that may be absent.

The checker asks one question over and over: "if this operation took effect
now, with the key holding ``state``, would the client have seen what it saw,
and what would the key hold afterwards?". :func:`step` answers it, mirroring
:class:`novacron.consensus.kv.store.KVStore` for a single key:

- ``get`` returns the value, or None when the key is absent;
- ``put`` sets the value; ``delete`` makes the key absent;
- ``cas(expected, new)`` swaps only if the value equals ``expected`` (None
  meaning "absent") and reports whether it swapped.

Operations are first compiled into :class:`Step` records, so that the hot loop
of the search never looks at an :class:`Operation`'s optional fields again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..history import Operation

State = bytes | None
"""What one key holds: its value, or None when absent (the initial state of every key)."""

INITIAL: State = None


@dataclass(frozen=True, slots=True)
class Step:
    """One operation, reduced to what the register model needs.

    ``must`` is True for ``ok`` operations: they certainly took effect, so the
    linearization has to include them and their outputs are checked. Operations
    with an unknown outcome (``info``, or still ``pending``) have ``must`` False:
    they may take effect once, or never, and their outputs are unconstrained.

    ``read_only`` marks ``ok`` operations that never change the key: gets, and
    compare-and-sets that report they did not swap. The search may linearize
    them as soon as they are legal without ever reconsidering (see :mod:`.search`).
    """

    kind: str
    must: bool
    value: State = None
    expected: State = None
    read: State = None
    swapped: bool | None = None
    read_only: bool = False


def compile_step(op: Operation) -> Step:
    """The :class:`Step` of an operation that is ``ok``, ``info`` or ``pending`` (never ``fail``)."""
    must = op.status == "ok"
    swapped = op.swapped if must else None
    return Step(
        kind=op.kind,
        must=must,
        value=op.value,
        expected=op.expected,
        read=op.read if must else None,
        swapped=swapped,
        read_only=must and (op.kind == "get" or (op.kind == "cas" and swapped is False)),
    )


def step(state: State, s: Step) -> tuple[bool, State]:
    """``(legal, next_state)``: could ``s`` take effect on ``state``, and what would the key hold then.

    An ``ok`` cas whose ``swapped`` is None (no output recorded) is treated like
    an unknown output: whichever branch the compare takes is legal.
    """
    kind = s.kind
    if kind == "get":
        return (not s.must or state == s.read), state
    if kind == "put":
        return True, s.value
    if kind == "delete":
        return True, None
    # cas
    holds = state == s.expected
    if s.swapped is not None and s.swapped != holds:
        return False, state
    return True, (s.value if holds else state)


def has_effect(s: Step) -> bool:
    """False for operations that neither change the key nor constrain anything: unknown-outcome gets.

    The checker drops them before searching, since linearizing them or not
    can never make a difference.
    """
    return s.must or s.kind != "get"
