"""Environment overrides: ``NOVACRON_*`` variables that win over the configuration file.

Containers and CI jobs configure through the environment; a file baked into an image sets the
common values and the environment the per-node ones. Two forms are recognised:

* four short names for what differs most between nodes::

      NOVACRON_NODE_ID    -> system.node_id
      NOVACRON_DATA_DIR   -> system.data_dir
      NOVACRON_LOG_LEVEL  -> system.log_level
      NOVACRON_DWCP_MODE  -> dwcp.forced_mode  (datacenter|internet|hybrid; "" or auto = detect)

* a general form reaching any field, ``NOVACRON_<SECTION>__<FIELD>`` with ``__`` between
  nesting levels: ``NOVACRON_DWCP__TRANSPORT__MAX_STREAMS=64``,
  ``NOVACRON_NETWORK__ENABLE_TLS=false``.

Names are case-insensitive. Values of text and choice fields are taken verbatim (so a node id
``007`` stays ``"007"``); other values are read as YAML scalars, so ``false``, ``64`` and
``500ms`` mean what they say.

Any other ``NOVACRON_*`` variable (one without ``__`` that is not one of the four short names,
e.g. ``NOVACRON_SEED`` used by a tool) is **ignored**: the prefix is shared with the rest of the
project. A variable in the ``__`` form, on the other hand, can only be meant for the
configuration, so one naming an unknown section or field is an error naming the variable —
silently ignoring ``NOVACRON_DWCP__TRANSPORT__MAX_STREAM`` would be the typo bug all over again.
Two variables setting the same field (``NOVACRON_LOG_LEVEL`` and ``NOVACRON_SYSTEM__LOG_LEVEL``)
are an error too, since neither can be said to win.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from novacron.config.errors import ConfigError
from novacron.config.schema import choices, section_at, section_type

ENV_PREFIX = "NOVACRON_"

#: the short names, and the field each one sets
SHORT_NAMES: dict[str, tuple[str, ...]] = {
    "NOVACRON_NODE_ID": ("system", "node_id"),
    "NOVACRON_DATA_DIR": ("system", "data_dir"),
    "NOVACRON_LOG_LEVEL": ("system", "log_level"),
    "NOVACRON_DWCP_MODE": ("dwcp", "forced_mode"),
}


@dataclass(frozen=True)
class EnvOverride:
    """One recognised variable: its name as found, the field path it sets, the parsed value."""

    variable: str
    path: tuple[str, ...]
    value: Any


def env_overrides(env: Mapping[str, str]) -> list[EnvOverride]:
    """The overrides ``env`` asks for; :class:`ConfigError` listing every bad variable at once."""
    problems: list[str] = []
    found: dict[tuple[str, ...], EnvOverride] = {}
    for name in sorted(env):
        try:
            path = _target(name)
        except LookupError as exc:
            problems.append(f"{name}: {exc.args[0]}")
            continue
        if path is None:
            continue
        if path in found:
            problems.append(
                f"{name}: sets {'.'.join(path)}, which {found[path].variable} sets too; set only one of them"
            )
            continue
        found[path] = EnvOverride(name, path, _parse_value(env[name], path))
    if problems:
        raise ConfigError(problems)
    return list(found.values())


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[EnvOverride]) -> dict[str, Any]:
    """A deep copy of ``data`` with each override set at its path (missing sections created).

    Where the file has a non-mapping in the way (``dwcp: 5``) the override is skipped: the
    validation that follows reports the file's mistake, which is the one to fix.
    """
    result = copy.deepcopy(dict(data))
    for override in overrides:
        node = result
        for key in override.path[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[override.path[-1]] = override.value
    return result


def _target(name: str) -> tuple[str, ...] | None:
    """The field path ``name`` sets, ``None`` if it is not ours, ``LookupError`` if it is bad."""
    upper = name.upper()
    if not upper.startswith(ENV_PREFIX):
        return None
    if upper in SHORT_NAMES:
        return SHORT_NAMES[upper]
    rest = upper[len(ENV_PREFIX) :]
    if "__" not in rest:
        return None
    parts = tuple(rest.lower().split("__"))
    if "" in parts:
        raise LookupError("malformed name: expected NOVACRON_<SECTION>__<FIELD>[__<FIELD>...]")
    return _resolve(parts)


def _resolve(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Check ``parts`` names a value field of the schema; say precisely what is wrong if not."""
    for depth, part in enumerate(parts):
        model = section_at(parts[:depth])
        if model is None:
            parent = ".".join(parts[:depth])
            raise LookupError(f"{parent} is a field, not a section, so it has no '{part}'")
        if part not in model.model_fields:
            what = f"field '{part}' in {'.'.join(parts[:depth])}" if depth else f"section '{part}'"
            close = difflib.get_close_matches(part, list(model.model_fields), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            allowed = ", ".join(model.model_fields)
            raise LookupError(f"unknown {what} ({hint}allowed: {allowed})")
    leaf = section_at(parts[:-1]).model_fields[parts[-1]]  # type: ignore[union-attr]
    if section_type(leaf) is not None:
        section = "__".join(parts).upper()
        raise LookupError(
            f"{'.'.join(parts)} is a section; set one of its fields, e.g. "
            f"{ENV_PREFIX}{section}__{next(iter(section_type(leaf).model_fields)).upper()}"
        )
    return parts


def _parse_value(raw: str, path: tuple[str, ...]) -> Any:
    """Text and choice fields take the raw string; others read it as a YAML scalar."""
    info = section_at(path[:-1]).model_fields[path[-1]]  # type: ignore[union-attr]
    if info.annotation is str or choices(info):
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # Only scalars are meaningful; "" (YAML null) and structures are passed as the raw text, so
    # the error message quotes what the variable actually contains.
    return value if isinstance(value, bool | int | float | str) else raw
