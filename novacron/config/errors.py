"""``ConfigError``: every configuration problem, one readable line each.

pydantic's messages are written for developers ("Input should be 'cubic', 'bbr' or 'adaptive'
[type=literal_error, input_value='reno', ...]"). Whoever reads a config error is usually an
operator with the YAML open, so each problem becomes one line that says where (the dotted field
path, and the file or environment variable it came from), what is allowed, and what was found::

    node.yaml: dwcp.transport.congestion_algo: must be one of cubic, bbr, adaptive (got 'reno')
    system.log_level: must be one of debug, ..., critical (got 'loud' from NOVACRON_LOG_LEVEL)

The pydantic error stays available (``.validation_error``, and its details as ``.errors``) for
code that wants to act on error types rather than read text.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import annotated_types
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from novacron.config.schema import choices, field_at, section_at

#: a wrong number or boolean, worded alike in every YAML file NovaCron reads (the scenario
#: errors of ``novacron.sim.scenarios`` use these too)
SCALAR_MESSAGES: dict[str, str] = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
}

#: the pydantic error types whose meaning does not depend on the field
_PLAIN_MESSAGES: dict[str, str] = {
    **SCALAR_MESSAGES,
    "string_type": "must be a string, in quotes if it looks like a number or boolean",
    "string_too_short": "must not be empty",
    "model_type": "must be a mapping of fields",
    "model_attributes_type": "must be a mapping of fields",
    "dict_type": "must be a mapping of fields",
}

_BOUND_TYPES = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


class ConfigError(ValueError):
    """An invalid configuration: one line per problem in ``str(err)`` and in ``.problems``.

    Attributes:
        problems: the problem lines, each ``[source: ]path: message``.
        source: the file (or example) the configuration was read from, if any.
        validation_error: the underlying pydantic ``ValidationError``, when there is one.
    """

    def __init__(
        self,
        problems: str | Sequence[str],
        *,
        source: str | None = None,
        validation_error: ValidationError | None = None,
    ) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        self.validation_error = validation_error
        super().__init__("\n".join(self.problems))

    @property
    def errors(self) -> list[ErrorDetails]:
        """pydantic's structured error details (empty for YAML and environment problems)."""
        return self.validation_error.errors() if self.validation_error is not None else []

    @classmethod
    def from_validation_error(
        cls,
        exc: ValidationError,
        *,
        source: str | None = None,
        origins: Mapping[tuple[str, ...], str] | None = None,
    ) -> ConfigError:
        """Translate ``exc``; ``origins`` maps field paths to the env variables that set them.

        A value set by an environment variable names that variable instead of the file: the
        file is not where the operator has to look.
        """
        origins = origins or {}
        lines = []
        for error in exc.errors():
            loc = tuple(str(part) for part in error["loc"])
            message, show_input = _describe(error, loc)
            variable = origins.get(loc)
            if show_input:
                message += f" (got {_show(error['input'])}"
                message += f" from {variable})" if variable else ")"
            elif variable:
                message += f" (from {variable})"
            line = f"{'.'.join(loc)}: {message}" if loc else message
            if source and not variable:
                line = f"{source}: {line}"
            lines.append(line)
        return cls(lines, source=source, validation_error=exc)


def _describe(error: ErrorDetails, loc: tuple[str, ...]) -> tuple[str, bool]:
    """Return the message for one pydantic error and whether to quote the offending input."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "literal_error":
        info = field_at(loc)
        allowed = choices(info) if info is not None else ()
        listed = ", ".join(_show_choice(choice) for choice in allowed) or ctx.get("expected", "?")
        return f"must be one of {listed}", True
    if kind == "extra_forbidden":
        return _unknown_field(loc), False
    if kind in _BOUND_TYPES:
        return _bounds_message(kind, ctx, loc), True
    if kind in _PLAIN_MESSAGES:
        return _PLAIN_MESSAGES[kind], True
    if kind in {"value_error", "assertion_error"}:
        # Our own validators: the message is already written for people. Model-level (cross-
        # field) checks receive the whole section as input, which is not worth quoting.
        message = str(ctx.get("error", error["msg"]))
        return message, not isinstance(error["input"], dict)
    msg = error["msg"]
    return msg[:1].lower() + msg[1:], True


def _unknown_field(loc: tuple[str, ...]) -> str:
    name, parent = loc[-1], loc[:-1]
    model = section_at(parent)
    if model is None:
        return "unknown field"
    allowed = list(model.model_fields)
    what = "section" if not parent else "field"
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown {what} ({hint}allowed: {', '.join(allowed)})"


def _bounds_message(kind: str, ctx: dict[str, Any], loc: tuple[str, ...]) -> str:
    """Name the whole allowed range when the field has both ends, not only the end crossed."""
    info = field_at(loc)
    low = high = None
    for meta in info.metadata if info is not None else ():
        if isinstance(meta, annotated_types.Ge):
            low = meta.ge
        elif isinstance(meta, annotated_types.Le):
            high = meta.le
    if low is not None and high is not None:
        return f"must be between {low} and {high}"
    symbol = {
        "greater_than_equal": ">=",
        "less_than_equal": "<=",
        "greater_than": ">",
        "less_than": "<",
    }[kind]
    bound = next(iter(ctx.values()), "?")
    return f"must be {symbol} {bound}"


def _show_choice(choice: object) -> str:
    return '""' if choice == "" else str(choice)


def _show(value: object) -> str:
    """Render a value the way it would be written in YAML-ish text: strings quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value)
