"""`@deferred_dataclass(...)`: `@dataclass(...)`, applied when the class is first used.

Making a frozen dataclass costs ~0.7 ms (dataclasses compiles each generated method
with exec), and a module of 27 instruction types paid ~16 ms of every build's start
for types most Dockerfiles never use. Here the class statement only marks the class;
the first instantiation of it (in its `__new__`) turns it, and its pending bases, into
a dataclass in place, so identity, `isinstance`, pickling, `==`, `hash` and
`dataclasses.replace` are exactly those of `@dataclass`.

Limit: before a class's first instance, class-level dataclass introspection
(`dataclasses.fields(cls)`, `cls.__match_args__`) needs `materialize(cls)` first.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # typing and dataclasses cost a registry request's start ~9 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T", bound=type)
else:
    def dataclass_transform(**_options: object) -> Callable[[T], T]:
        return lambda function: function

_PENDING = "__deferred_dataclass_options__"
_lock = threading.Lock()
_marked: list[type] = []


def _new(cls: type, *args: Any, **kwargs: Any) -> Any:
    # Stays after materialize: deleting a __new__ set on a class does not give CPython
    # back object.__new__'s slot (the args would then reach object.__new__ and fail).
    if _PENDING in cls.__dict__:
        materialize(cls)
    return object.__new__(cls)  # then type() calls the __init__ dataclass made


def materialize(cls: type) -> type:
    """Make `cls` and its pending bases dataclasses now (bases first); returns `cls`.

    A class stays marked until it is complete: another thread creating one meanwhile
    still sees the mark in `_new`, and waits for the lock."""
    import dataclasses  # here: a process that makes no instance never loads it

    with _lock:
        for klass in reversed(cls.__mro__):
            options = klass.__dict__.get(_PENDING)
            if options is None:
                continue
            dataclasses.dataclass(klass, **options)
            delattr(klass, _PENDING)
    return cls


def materialize_all() -> None:
    """Materialize every class marked so far: for a process that forks workers, so
    that each worker does not pay for the classes it uses again."""
    for cls in list(_marked):
        materialize(cls)


@dataclass_transform(kw_only_default=False)
def deferred_dataclass(*, frozen: bool = False, kw_only: bool = False, eq: bool = True,
                       repr: bool = True) -> Callable[[T], T]:  # noqa: A002 (dataclass's name)
    def mark(cls: T) -> T:
        setattr(cls, _PENDING, {"frozen": frozen, "kw_only": kw_only, "eq": eq,
                                "repr": repr})
        cls.__new__ = staticmethod(_new)  # type: ignore[assignment]
        _marked.append(cls)
        return cls

    return mark
