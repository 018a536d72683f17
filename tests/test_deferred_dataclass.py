"""`deferred_dataclass` behaves as `dataclass` once used, and costs nothing before."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
import threading

import pytest

from ocibuild.deferred import deferred_dataclass, materialize, materialize_all


@deferred_dataclass(frozen=True)
class Point:
    x: int
    y: int = 0


@deferred_dataclass(frozen=True, kw_only=True)
class Base:
    name: str
    tags: tuple[str, ...] = ()


@deferred_dataclass(frozen=True, kw_only=True)
class Child(Base):
    size: int


def test_instances_have_dataclass_semantics() -> None:
    p = Point(1)
    assert p == Point(1, 0) and p != Point(1, 2)
    assert hash(p) == hash(Point(1, 0))
    assert repr(p) == "Point(x=1, y=0)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    assert dataclasses.replace(p, y=5) == Point(1, 5)
    assert pickle.loads(pickle.dumps(p)) == p and copy.deepcopy(p) == p
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]


def test_a_subclass_made_first_brings_its_base_along() -> None:
    c = Child(name="a", size=3)
    assert isinstance(c, Base)
    assert [f.name for f in dataclasses.fields(c)] == ["name", "tags", "size"]
    assert Base(name="b") == Base(name="b", tags=())
    with pytest.raises(TypeError):
        Child("a", size=3)  # type: ignore[misc]  # kw_only kept


def test_classes_made_from_many_threads_at_once_are_all_complete() -> None:
    @deferred_dataclass(frozen=True)
    class Late:
        a: int
        b: str = "x"

    got: list[object] = []
    errors: list[BaseException] = []

    def make(i: int) -> None:
        try:
            got.append(Late(i))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(g.a for g in got) == list(range(16))  # type: ignore[attr-defined]


def test_materialize_allows_class_level_introspection() -> None:
    @deferred_dataclass()
    class Unused:
        a: int

    assert not dataclasses.is_dataclass(Unused)
    assert [f.name for f in dataclasses.fields(materialize(Unused))] == ["a"]


def test_materialize_all_makes_every_marked_class_before_its_first_use() -> None:
    """What a forking server does once, so that its children do not each pay for it."""
    @deferred_dataclass(frozen=True)
    class Pending:
        a: int

    materialize_all()
    assert dataclasses.is_dataclass(Pending) and dataclasses.is_dataclass(Child)
    assert Pending(1) == Pending(1)


def test_a_build_s_parse_makes_only_the_instruction_types_it_uses() -> None:
    """The point of deferring: the start-up of a build pays for FROM/RUN/COPY only."""
    code = (
        "from ocibuild.frontend.dockerfile import instructions as ins\n"
        "df = ins.parse_dockerfile('FROM busybox\\nRUN true\\nCOPY a /b\\n')\n"
        "made = sorted(n for n, v in vars(ins).items()\n"
        "              if isinstance(v, type) and '__dataclass_fields__' in v.__dict__)\n"
        "print(' '.join(made))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.split()
    assert {"FromInstruction", "RunInstruction", "CopyInstruction", "Dockerfile"} <= set(out)
    assert "HealthcheckInstruction" not in out and "OnbuildInstruction" not in out
    assert len(out) < 14  # of the 27 the module defines or imports
