"""The part of Go's text/template that `--format` strings use in docker and podman:
`{{.Field}}`, `{{.A.B}}`, `{{json .X}}`, `{{index .Map "key"}}`, `{{.}}`, and a
leading `table ` (a header row of the field names). Values print as Go prints them:
lists as `[a b]`, maps as `map[k:v]`, a missing field as `<no value>`."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from ocibuild.errors import UsageError

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}")


def go_text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_text(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _lookup(data: Any, path: str, template: str) -> Any:
    if path == ".":
        return data
    if not path.startswith("."):
        raise UsageError(f"--format {template!r}: cannot evaluate {path!r}")
    value = data
    for part in path[1:].split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise UsageError(f"--format {template!r}: no field {path!r}"
                             + (f" (fields: {', '.join(sorted(data))})"
                                if isinstance(data, Mapping) else ""))
        value = value[part]
    return value


def _evaluate(action: str, data: Mapping[str, Any], template: str) -> str:
    try:
        words = shlex.split(action)
    except ValueError:
        raise UsageError(f"--format {template!r}: cannot parse {{{{{action}}}}}") from None
    if not words:
        return ""
    if words[0] == "json" and len(words) == 2:
        return json.dumps(_lookup(data, words[1], template), separators=(",", ":"))
    if words[0] == "index" and len(words) == 3:
        container = _lookup(data, words[1], template)
        if isinstance(container, Mapping):
            return go_text(container.get(words[2]))
        if isinstance(container, list) and words[2].isdigit():
            return go_text(container[int(words[2])]) if int(words[2]) < len(container) \
                else "<no value>"
        return "<no value>"
    if words[0] in ("upper", "lower") and len(words) == 2:
        text = go_text(_lookup(data, words[1], template))
        return text.upper() if words[0] == "upper" else text.lower()
    if len(words) == 1:
        return go_text(_lookup(data, words[0], template))
    raise UsageError(f"--format {template!r}: unsupported action {{{{{action}}}}} "
                     "(fields .Name, json, index, upper, lower are understood)")


def render(template: str, data: Mapping[str, Any]) -> str:
    """`template` filled in from `data` (escapes `\\t` and `\\n` as docker does)."""
    text = template.replace("\\t", "\t").replace("\\n", "\n")
    return _ACTION.sub(lambda m: _evaluate(m.group(1), data, template), text)


def is_table(template: str) -> bool:
    return template.startswith("table ") or template == "table"


def header(template: str) -> str:
    """The header row of a `table ...` template: each field's name in capitals."""
    body = template[len("table"):].strip().replace("\\t", "\t")

    def name(m: re.Match[str]) -> str:
        words = m.group(1).split()
        last = words[-1] if words else ""
        return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", last.lstrip(".").split(".")[-1]).upper()

    return _ACTION.sub(name, body)


def table_body(template: str) -> str:
    return template[len("table"):].strip()
