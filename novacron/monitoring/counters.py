"""Counters that carry their own explanation, for exporters to show.

A stats dataclass (the runtime's network counters, a state-sync replica's) declares each counter
with :func:`counter`, or a count by reason with :func:`counter_by`, giving one sentence that says
what the number counts. :func:`counters` walks them, so the metrics exporter
(:mod:`novacron.monitoring.metrics`) publishes every counter a component keeps, including ones
added later, and the ``# HELP`` line an operator reads is the sentence beside the field, not a
second copy of it that drifts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

_HELP = "help"
_LABEL = "label"


def counter(help: str) -> Any:
    """A dataclass field counting events from 0; ``help`` says what one event is."""
    return field(default=0, metadata={_HELP: help})


def counter_by(label: str, help: str) -> Any:
    """A dataclass field counting events by ``label`` (e.g. a reason) in a :class:`Counter`."""
    return field(default_factory=Counter, metadata={_HELP: help, _LABEL: label})


@dataclass(frozen=True)
class CounterReading:
    """One counter of a stats object: its value, or its values by :attr:`label` value."""

    name: str
    help: str
    value: int | Mapping[str, int]
    label: str = ""


def counters(stats: Any) -> Iterator[CounterReading]:
    """The counters ``stats`` (a dataclass instance) holds now, in declaration order.

    Fields declared without :func:`counter` still count if they hold an int; their help is then
    their name, which at least says where the number comes from.
    """
    if not is_dataclass(stats) or isinstance(stats, type):
        raise TypeError(f"expected a dataclass instance, got {type(stats).__name__}")
    for f in fields(stats):
        value = getattr(stats, f.name)
        help = f.metadata.get(_HELP, f.name.replace("_", " "))
        if isinstance(value, Mapping):
            yield CounterReading(f.name, help, dict(value), f.metadata.get(_LABEL, "reason"))
        elif isinstance(value, int) and not isinstance(value, bool):
            yield CounterReading(f.name, help, value)
