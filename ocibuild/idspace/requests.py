"""Typed requests to the processes that act on files under the sandbox's id mapping.

Each operation the file-op server (worker.py) runs is a frozen request class declared
with `@request_type`, and the function that answers it is registered with
`@handler(TheRequest)` beside it. A request travels as JSON: its type's wire name (the
module and class name) and its fields. The receiving side never looks a name up in
the interpreter: it finds the type among those registered, and only the modules on the
worker's allow-list (`worker.HANDLER_MODULES`) are ever imported to register them.

Validation happens on arrival, before any handler runs, against a field spec
computed once when the class is declared (from its annotation strings, so no
`typing.get_type_hints`): an unknown request, a missing or unexpected field, or a value
of the wrong type is refused with a `RequestError` that says which. Field types are
deliberately few: str, int, bool, None, `tuple[X, ...]` (a JSON list), unions of these,
and nested value types declared with `@field_type`, such as `RootFS`.

The classes are deferred dataclasses (`ocibuild.deferred`): declaring one costs
nothing on a build that never sends it. A leaf module: the sandbox uses `RootFS` too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, dataclass_transform

from ocibuild.deferred import deferred_dataclass
from ocibuild.errors import OcibuildError

R = TypeVar("R")
T = TypeVar("T", bound=type)
Check = Callable[[Any, str], Any]  # (value from the wire, where) -> the field's value


class RequestError(OcibuildError):
    """A request refused on arrival (unknown, or fields not as its type declares)."""


class Request(Generic[R]):
    """Base of request types; `R` is what the handler returns (JSON-shaped)."""

    wire_name: ClassVar[str]
    # Finished even when the build's process group gets Ctrl-C or SIGTERM (the layer of
    # a step the build already reported done); other requests stop with the build.
    finishes_on_signal: ClassVar[bool] = False
    # Its handler, when it succeeds, leaves nothing in its process that a later request
    # would meet (no mount, thread, signal disposition or working directory; a private
    # mount namespace with nothing mounted in it is harmless): the file-op server's
    # resident child may answer it after others, without a fork (worker._Resident).
    stateless: ClassVar[bool] = False


class _Spec:
    """A declared class's fields: names and the check of each, in declaration order."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.checks: dict[str, Check] = {}
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if not str(annotation).startswith("ClassVar"):
                self.checks[name] = _check_for(str(annotation))

    def encode(self, value: Any) -> dict[str, Any]:
        return {name: _to_wire(getattr(value, name)) for name in self.checks}

    def decode(self, fields: Any, where: str) -> Any:
        if not isinstance(fields, dict):
            raise RequestError(f"{where}: expected an object of fields, "
                               f"got {_json_type(fields)}")
        missing = [name for name in self.checks if name not in fields]
        if missing:
            raise RequestError(f"{where}: missing field {', '.join(missing)}")
        extra = sorted(str(name) for name in fields if name not in self.checks)
        if extra:
            raise RequestError(f"{where}: unexpected field {', '.join(extra)}")
        values = {name: check(fields[name], f"{where}.{name}")
                  for name, check in self.checks.items()}
        return self.cls(**values)


_FIELD_TYPES: dict[str, _Spec] = {}  # by class name, as annotations write them
_REQUESTS: dict[str, _Spec] = {}  # by wire name
_HANDLERS: dict[type, Callable[[Any], Any]] = {}


@dataclass_transform(frozen_default=True)
def field_type(cls: T) -> T:
    """Declare a frozen value type that request fields may hold."""
    cls = deferred_dataclass(frozen=True)(cls)
    _FIELD_TYPES[cls.__name__] = _Spec(cls)
    return cls


@dataclass_transform(frozen_default=True)
def request_type(cls: T) -> T:
    """Declare a request: a frozen dataclass whose fields are checked on arrival."""
    cls = deferred_dataclass(frozen=True)(cls)
    name = f"{cls.__module__}.{cls.__qualname__}"
    setattr(cls, "wire_name", name)  # noqa: B010 (T is any class to the type checker)
    _REQUESTS[name] = _Spec(cls)
    return cls


def handler(request: type[Request[R]]) -> Callable[[Callable[[Any], R]], Callable[[Any], R]]:
    """Register the decorated function as the answer to `request`."""
    def register(function: Callable[[Any], R]) -> Callable[[Any], R]:
        _HANDLERS[request] = function
        return function
    return register


def wire_module(name: str) -> str:
    """The module that declares the request type named `name` on the wire."""
    return name.rpartition(".")[0]


def encode(request: Request[Any]) -> dict[str, Any]:
    """The request as a JSON-able message."""
    name = type(request).wire_name
    return {"request": name, "fields": _REQUESTS[name].encode(request)}


def request_class(message: Any) -> type[Request[Any]]:
    """The registered request type `message` names (with a handler in this process)."""
    if not isinstance(message, dict) or set(message) != {"request", "fields"}:
        raise RequestError("not a request: expected an object with request and fields")
    name = message["request"]
    spec = _REQUESTS.get(name) if isinstance(name, str) else None
    if spec is None or spec.cls not in _HANDLERS:
        raise RequestError(f"unknown request {name!r}")
    cls: type[Request[Any]] = spec.cls
    return cls


def decode(message: Any) -> Request[Any]:
    """The request `message` carries, its fields checked against its type."""
    cls = request_class(message)
    return _REQUESTS[cls.wire_name].decode(message["fields"], cls.__name__)


def answer(request: Request[R]) -> R:
    """Run the handler registered for the request's type."""
    return _HANDLERS[type(request)](request)


def _to_wire(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_to_wire(v) for v in value]
    spec = _FIELD_TYPES.get(type(value).__name__)
    if spec is not None and isinstance(value, spec.cls):
        return spec.encode(value)
    return value


# ---- the field spec, from annotation strings ----------------------------------------

def _json_type(value: Any) -> str:
    return {bool: "bool", int: "int", str: "str", type(None): "None", list: "list",
            dict: "object", float: "float"}.get(type(value), type(value).__name__)


def _split_union(annotation: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(annotation):
        depth += (char == "[") - (char == "]")
        if char == "|" and depth == 0:
            parts.append(annotation[start:i].strip())
            start = i + 1
    parts.append(annotation[start:].strip())
    return parts


def _scalar(kind: type, name: str) -> Check:
    def check(value: Any, where: str) -> Any:
        # bool is an int to Python, never to a field of type int
        if type(value) is not kind:
            raise RequestError(f"{where}: expected {name}, got {_json_type(value)}")
        return value
    return check


def _check_none(value: Any, where: str) -> None:
    if value is not None:
        raise RequestError(f"{where}: expected None, got {_json_type(value)}")


def _check_for(annotation: str) -> Check:
    alternatives = _split_union(annotation)
    if len(alternatives) > 1:
        checks = [_check_for(a) for a in alternatives]

        def check_union(value: Any, where: str) -> Any:
            for one in checks:
                try:
                    return one(value, where)
                except RequestError:
                    continue
            raise RequestError(f"{where}: expected {annotation}, got {_json_type(value)}")
        return check_union
    if annotation in ("str", "int", "bool"):
        return _scalar({"str": str, "int": int, "bool": bool}[annotation], annotation)
    if annotation == "None":
        return _check_none
    if annotation.startswith("tuple[") and annotation.endswith(", ...]"):
        item = _check_for(annotation[len("tuple["):-len(", ...]")])

        def check_tuple(value: Any, where: str) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple):
                raise RequestError(f"{where}: expected a list, got {_json_type(value)}")
            return tuple(item(v, f"{where}[{i}]") for i, v in enumerate(value))
        return check_tuple
    if annotation in _FIELD_TYPES:
        spec = _FIELD_TYPES[annotation]
        return lambda value, where: spec.decode(value, where)
    raise TypeError(f"a request field cannot be of type {annotation}")


# ---- the root filesystem ------------------------------------------------------------

@field_type
class RootFS:
    """A root filesystem, as steps and requests name it: directories `lowers` (bottom
    first) and, for a writable overlay, `upper` (which receives every change) and
    `work` (overlayfs' scratch directory, beside `upper`). One lower without an upper is
    a plain directory, used as it is; several without one, a read-only stack."""

    lowers: tuple[str, ...]
    upper: str | None = None
    work: str | None = None

    @classmethod
    def directory(cls, path: Path | str) -> RootFS:
        return cls((str(path),))

    @classmethod
    def stack(cls, lowers: Sequence[Path | str]) -> RootFS:
        """A read-only view of `lowers` (bottom first)."""
        return cls(tuple(str(p) for p in lowers))

    @classmethod
    def overlay(cls, lowers: Sequence[Path | str], upper: Path | str,
                work: Path | str) -> RootFS:
        return cls(tuple(str(p) for p in lowers), str(upper), str(work))

    @property
    def is_directory(self) -> bool:
        return self.upper is None and len(self.lowers) == 1

    @property
    def path(self) -> Path:
        """The directory of a plain-directory root."""
        if not self.is_directory:
            raise ValueError(f"not a plain directory: {self}")
        return Path(self.lowers[0])
