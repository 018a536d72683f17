"""`RUN --mount=...` specifications.

- `RunMount`: one mount (type bind|cache|secret|tmpfs|ssh, target, source,
  from, id, sharing, readonly, required, size, mode, uid, gid, env).
- `parse_mount(spec, expand=None) -> RunMount`: parse the CSV value of one
  `--mount` flag. Values may hold build variables: with `expand` (a function
  word -> expanded word, e.g. `ShellLex.expand_word` bound to the stage's env)
  every value is expanded first. Without it, values holding `$` are kept as
  written and, where a number/boolean/enum is expected, left at the default
  with `deferred=True`: call `parse_mount(m.raw, expand)` once variables are known.
  Raises `ValueError` with a message for people.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from ocibuild.deferred import deferred_dataclass
from ocibuild.frontend.dockerfile.flags import nearest

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_KEYS = (
    "type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro",
    "readwrite", "rw", "id", "sharing", "required", "size", "mode", "uid", "gid", "env",
)
_DEFERRABLE = frozenset({"type", "readonly", "ro", "readwrite", "rw", "required", "size",
                         "sharing", "mode", "uid", "gid"})
_RAM_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


@functools.cache
def _ram() -> re.Pattern[str]:
    return re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")


@deferred_dataclass(frozen=True)
class RunMount:
    """A RUN --mount value, parsed; `raw` keeps it as written."""
    raw: str
    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    id: str = ""
    sharing: str = ""
    readonly: bool = True
    required: bool = False
    size: int = 0
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    env: str | None = None
    deferred: bool = False


def ram_in_bytes(text: str) -> int:
    """docker/go-units RAMInBytes: "64m", "1.5GiB", "512" (binary units)."""
    m = _ram().match(text)
    if m is None:
        raise ValueError(f"invalid size: {text!r}")
    number = float(m.group(1)) if m.group(1).count(".") <= 1 else None
    if number is None:
        raise ValueError(f"invalid size: {text!r}")
    unit = (m.group(2) or "").lower()
    return int(number * _RAM_UNITS.get(unit, 1))


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"invalid value for {key}: {value}" if lowered else f"invalid value for {key}")


def _parse_uint(key: str, value: str, base: int) -> int:
    try:
        number = int(value, base)
    except ValueError:
        raise ValueError(f"invalid value {value} for {key}") from None
    if number < 0 or number >= 1 << 32 or value.strip() != value or value.startswith("+"):
        raise ValueError(f"invalid value {value} for {key}")
    return number


def _fields(spec: str) -> list[str]:
    import csv  # only Dockerfiles with RUN --mount pay for it

    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as exc:
        raise ValueError(f"failed to parse csv mounts: {exc}") from None
    return rows[0] if rows else []


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> RunMount:
    fields: dict[str, object] = {"raw": spec}
    mount_type = "bind"
    ro_auto = True
    deferred = False
    for item in _fields(spec):
        key, has_value, value = item.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro"):
                fields["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                fields["readonly"], ro_auto = False, False
            elif key == "required":
                if mount_type not in ("secret", "ssh"):
                    raise ValueError(f"unexpected key '{key}' for mount type '{mount_type}'")
                fields["required"] = True
            else:
                raise ValueError(f"invalid field '{item}' must be a key=value pair")
            continue
        if key == "from" and "$" in value[:-1]:
            raise ValueError(
                "'from' doesn't support variable expansion, define alias stage instead"
            )
        if expand is not None:
            value = expand(value)
        elif "$" in value and key in _DEFERRABLE:
            deferred = True
            continue
        if key == "type":
            lowered = value.lower()
            if lowered not in MOUNT_TYPES:
                raise ValueError(_suggest(f"unsupported mount type {value!r}", value, MOUNT_TYPES))
            mount_type = lowered
        elif key == "from":
            fields["from_"] = value
        elif key in ("source", "src"):
            fields["source"] = value
        elif key in ("target", "dst", "destination"):
            fields["target"] = value
        elif key in ("readonly", "ro"):
            fields["readonly"], ro_auto = _parse_bool(key, value), False
        elif key in ("readwrite", "rw"):
            fields["readonly"], ro_auto = not _parse_bool(key, value), False
        elif key == "required":
            if mount_type not in ("secret", "ssh"):
                raise ValueError(f"unexpected key '{key}' for mount type '{mount_type}'")
            fields["required"] = _parse_bool(key, value)
        elif key == "size":
            if mount_type != "tmpfs":
                raise ValueError(f"unexpected key '{key}' for mount type '{mount_type}'")
            try:
                fields["size"] = ram_in_bytes(value)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        elif key == "id":
            fields["id"] = value
        elif key == "sharing":
            lowered = value.lower()
            if lowered not in SHARING_MODES:
                raise ValueError(
                    _suggest(f"unsupported sharing value {value!r}", value, SHARING_MODES)
                )
            fields["sharing"] = lowered
        elif key == "mode":
            fields["mode"] = _parse_uint(key, value, 8)
        elif key in ("uid", "gid"):
            fields[key] = _parse_uint(key, value, 10)
        elif key == "env":
            fields["env"] = value
        else:
            raise ValueError(_suggest(f"unexpected key '{key}' in '{item}'", key, _KEYS))
    fields["type"] = mount_type
    if mount_type not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if fields.get(key) is not None:
                raise ValueError(f"{key} not allowed for {mount_type!r} type mounts")
    if ro_auto:
        fields["readonly"] = mount_type not in ("cache", "tmpfs")
    if mount_type == "secret":
        if fields.get("from_"):
            raise ValueError("secret mount should not have a from")
        if fields.get("sharing"):
            raise ValueError("secret mount should not define sharing")
        if not (fields.get("source") or fields.get("target") or fields.get("id")):
            raise ValueError("invalid secret mount. one of source, target required")
        if fields.get("source") and fields.get("id"):
            raise ValueError("both source and id can't be set")
    if fields.get("sharing") and mount_type != "cache":
        raise ValueError(f"invalid cache sharing set for {mount_type} mount")
    if mount_type == "cache" and not fields.get("sharing"):
        fields["sharing"] = "shared"
    if mount_type in ("bind", "cache", "tmpfs") and not fields.get("target") and not deferred:
        raise ValueError(f"mount type {mount_type} requires a target (target=PATH)")
    return RunMount(deferred=deferred, **fields)  # type: ignore[arg-type]


def _suggest(message: str, value: str, options: tuple[str, ...]) -> str:
    guess = nearest(value, options)
    return f"{message} (did you mean {guess}?)" if guess else message
