"""Loading configurations from YAML files, mappings and the shipped examples; dumping them back.

Precedence, lowest first: **defaults < file < environment**. A field the file does not mention
keeps its schema default; a ``NOVACRON_*`` variable (see :mod:`novacron.config.environment`)
replaces whatever the file says. Validation runs once, on the merged result, so a value from the
environment is checked exactly like one from the file, and every problem is reported together
in one :class:`ConfigError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from novacron.config.environment import apply_overrides, env_overrides
from novacron.config.errors import ConfigError
from novacron.config.schema import NovaCronConfig

EXAMPLES_PACKAGE = "novacron.config.examples"


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> NovaCronConfig:
    """Read the YAML file at ``path`` (``None``: no file), apply ``env`` overrides, validate.

    ``env`` defaults to ``os.environ``; pass ``{}`` for a result that depends on the file alone.
    An empty file means "all defaults". Unreadable files, YAML syntax errors, a top level that is
    not a mapping, and invalid values all raise :class:`ConfigError` naming the file.
    """
    if path is None:
        return config_from_mapping({}, env=env)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}", source=source) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text: {exc.reason}", source=source) from exc
    return config_from_mapping(parse_yaml(text, source), env=env, source=source)


def config_from_mapping(
    data: Mapping[str, Any] | None,
    *,
    env: Mapping[str, str] | None = None,
    source: str | None = None,
) -> NovaCronConfig:
    """Validate ``data`` (as a YAML file would hold it) after applying ``env`` overrides.

    ``data`` is not modified. ``env`` defaults to ``os.environ``; ``source`` names where
    ``data`` came from, for the error messages.
    """
    overrides = env_overrides(os.environ if env is None else env)
    merged = apply_overrides(data or {}, overrides)
    try:
        return NovaCronConfig.model_validate(merged)
    except ValidationError as exc:
        origins = {override.path: override.variable for override in overrides}
        raise ConfigError.from_validation_error(exc, source=source, origins=origins) from None


def dump_yaml(config: NovaCronConfig) -> str:
    """The configuration as YAML, durations in human form; loading it gives an equal config."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, default_flow_style=False)


# --- the shipped examples --------------------------------------------------------------------


def example_names() -> list[str]:
    """Names of the example configurations shipped in ``novacron.config.examples``, sorted."""
    folder = resources.files(EXAMPLES_PACKAGE)
    return sorted(
        entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml")
    )


def example_text(name: str) -> str:
    """The YAML text (with its comments) of the example called ``name``."""
    names = example_names()
    if name not in names:
        raise ConfigError(f"unknown example '{name}' (available: {', '.join(names)})")
    return resources.files(EXAMPLES_PACKAGE).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def load_example(name: str, *, env: Mapping[str, str] | None = None) -> NovaCronConfig:
    """Load the example called ``name``, with ``env`` overrides exactly as :func:`load_config`."""
    source = f"{name}.yaml"
    return config_from_mapping(parse_yaml(example_text(name), source), env=env, source=source)


# --- YAML --------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys instead of keeping the last one silently.

    A key written twice (say ``max_streams`` in two places of a long file) is almost always a
    mistake, and "the second one wins" makes it invisible.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base" merges are fine
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                seen = key in first_line
            except TypeError:  # an unhashable key: the base class reports it properly
                continue
            if seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key '{key}' (first defined on line {first_line[key]})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "<string>") -> dict[str, Any]:
    """Parse one YAML document into a mapping; :class:`ConfigError` with ``source:line`` if not.

    An empty document (or one holding only comments or ``null``) is an empty mapping: all
    defaults.
    """
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context:
            what += f" ({exc.context}"
            if exc.context_mark is not None:
                what += f" that starts on line {exc.context_mark.line + 1}"
            what += ")"
        raise ConfigError(f"{where}: invalid YAML: {what}", source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}", source=source) from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the value {data!r}"
        raise ConfigError(
            f"{source}:{node.start_mark.line + 1}: the top level must be a mapping of sections "
            f"(system, dwcp, network, storage, monitoring, security), not {kind}",
            source=source,
        )
    return data
