"""``ScenarioError``: a bad scenario, one readable line per problem, naming the field.

Whoever reads these has the YAML open, so each line says where (``faults[1].duration``, with the
file when there is one), what is allowed and what was found, instead of pydantic's developer
wording::

    my.yaml: faults[1].kind: must be one of partition, crash, burst, degrade, skew, slow_disk (got 'crush')
    my.yaml: topology.regions: unknown region(s) ['Mars'] (known: Australia East, ...)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from novacron.config.errors import SCALAR_MESSAGES


class ScenarioError(ValueError):
    """An invalid scenario: ``str(err)`` and ``.problems`` hold one line per problem."""

    def __init__(self, problems: str | Sequence[str], *, source: str | None = None) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))

    @classmethod
    def from_validation_error(
        cls,
        exc: ValidationError,
        *,
        source: str | None = None,
        union_tags: Mapping[str, Sequence[str]] | None = None,
    ) -> ScenarioError:
        """Translate pydantic's errors.

        ``union_tags`` maps a top-level field holding tagged unions (``faults``, ``topology``) to
        its ``kind`` values: pydantic puts the member it tried into the error location
        (``faults.1.partition.at``) but people wrote ``faults[1].at``, so tags are dropped, and a
        missing or unknown ``kind`` is answered with the list of kinds.
        """
        union_tags = union_tags or {}
        all_tags = {tag for tags in union_tags.values() for tag in tags}
        lines = []
        for error in exc.errors():
            path = field_path(error["loc"], all_tags)
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                path += ".kind"
                kinds = ", ".join(union_tags.get(str(error["loc"][0]), ()))
                found = (error.get("ctx") or {}).get("tag")
                message = f"must be one of {kinds}" + (f" (got {found!r})" if found else " (missing)")
            else:
                message = describe(error)
            lines.append(f"{path}: {message}" if path else message)
        return cls([f"{source}: {line}" for line in lines] if source else lines, source=source)


#: pydantic error types whose meaning does not depend on the field
_PLAIN = {
    "missing": "required field is missing",
    **SCALAR_MESSAGES,
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "model_type": "must be a mapping of fields",
    "dict_type": "must be a mapping of fields",
}
_BOUNDS = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}


def describe(error: ErrorDetails) -> str:
    """One pydantic error as a sentence for people, quoting the offending value when useful."""
    kind, ctx, value = error["type"], dict(error.get("ctx") or {}), error["input"]
    if kind in _PLAIN:
        message = _PLAIN[kind]
    elif kind in _BOUNDS:
        message = f"must be {_BOUNDS[kind]} {next(iter(ctx.values()), '?')}"
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected', '?').replace(chr(39), '').replace(' or ', ', ')}"
    elif kind == "too_short":
        message = f"needs at least {ctx.get('min_length')} item(s)"
    elif kind == "too_long":
        message = f"takes at most {ctx.get('max_length')} item(s)"
    elif kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error", error["msg"]))  # our own validators: already for people
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
    if kind != "missing" and isinstance(value, str | int | float) and repr(value) not in message:
        message += f" (got {value!r})"
    return message


def field_path(loc: Sequence[str | int], tags: Collection[str] = ()) -> str:
    """``("faults", 1, "partition", "at")`` -> ``faults[1].at``."""
    out = ""
    previous: str | int | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in tags and (isinstance(previous, int) or previous == "topology"):
            pass  # the union member pydantic tried, not something the user wrote
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out
