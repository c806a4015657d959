"""Loading scenarios: built-ins by name (YAML shipped in this package) or YAML files by path.

``load_scenario`` checks a scenario completely, including what only the built topology can tell
(does ``region:East US`` exist here?), so a bad file fails when it is loaded, with every problem
named by its field, rather than halfway through a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import ScenarioError
from .model import UNION_TAGS, Scenario

BUILTIN_PACKAGE = "novacron.sim.scenarios"


def builtin_names() -> list[str]:
    """Names of the scenarios shipped with NovaCron, sorted (``default`` is what ``make run`` runs)."""
    folder = resources.files(BUILTIN_PACKAGE)
    return sorted(e.name.removesuffix(".yaml") for e in folder.iterdir() if e.name.endswith(".yaml"))


def builtin_text(name: str) -> str:
    names = builtin_names()
    if name not in names:
        raise ScenarioError(
            f"unknown scenario {name!r}: built-ins are {', '.join(names)}; or give the path of a YAML file"
        )
    return resources.files(BUILTIN_PACKAGE).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def load_scenario(path_or_name: str | Path) -> Scenario:
    """A built-in scenario by name, or the scenario in a YAML file; raises :class:`ScenarioError`.

    A string is a path when it names an existing file or looks like one (ends in ``.yaml`` /
    ``.yml`` or contains a path separator); otherwise it is a built-in name. A file without a
    ``name`` is named after the file.
    """
    text_arg = str(path_or_name)
    looks_like_path = text_arg.endswith((".yaml", ".yml")) or "/" in text_arg or "\\" in text_arg
    if isinstance(path_or_name, Path) or looks_like_path or Path(text_arg).is_file():
        path = Path(path_or_name)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}", source=str(path)) from None
        except UnicodeDecodeError as exc:
            raise ScenarioError(f"{path}: not UTF-8 text: {exc.reason}", source=str(path)) from None
        return scenario_from_yaml(text, source=str(path), default_name=_safe_name(path.stem))
    return scenario_from_yaml(builtin_text(text_arg), source=f"{text_arg}.yaml", default_name=text_arg)


def scenario_from_yaml(text: str, *, source: str = "<string>", default_name: str | None = None) -> Scenario:
    return scenario_from_mapping(parse_yaml(text, source), source=source, default_name=default_name)


def scenario_from_mapping(
    data: Mapping[str, Any], *, source: str | None = None, default_name: str | None = None
) -> Scenario:
    """Validate ``data`` (as a YAML file holds it) and check it against its topology."""
    data = dict(data)
    if default_name is not None:
        data.setdefault("name", default_name)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError.from_validation_error(exc, source=source, union_tags=UNION_TAGS) from None
    from .runner import check_scenario  # the runner needs this module's results: import late

    check_scenario(scenario, source=source)
    return scenario


def scenario_to_yaml(scenario: Scenario) -> str:
    """The scenario as YAML in human units; loading it gives an equal scenario."""
    data = scenario.model_dump(mode="json")
    # ``kind`` first: it says what the rest of the mapping means.
    data["topology"] = _kind_first(data["topology"])
    data["faults"] = [_kind_first(fault) for fault in data["faults"]]
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def _kind_first(mapping: dict[str, Any]) -> dict[str, Any]:
    return {"kind": mapping["kind"], **{k: v for k, v in mapping.items() if k != "kind"}}


# --- YAML ----------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` refusing duplicate keys: a fault listed with two ``at:`` is a mistake."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first on line {seen[key]})", key_node.start_mark
                )
            if isinstance(key, str):
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "<string>") -> dict[str, Any]:
    """One YAML mapping; :class:`ScenarioError` with ``source:line:column`` when it is not."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context and exc.context_mark is not None:
            what += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        raise ScenarioError(f"{where}: invalid YAML: {what}", source=source) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: invalid YAML: {exc}", source=source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{source}: a scenario must be a mapping of fields ({', '.join(Scenario.model_fields)}), "
            f"not {type(data).__name__}",
            source=source,
        )
    return data


def _safe_name(stem: str) -> str:
    """A file stem usable as a scenario name (which becomes a results folder name)."""
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in stem) or "scenario"
