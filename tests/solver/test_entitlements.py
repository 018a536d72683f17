"""The solver refuses a graph whose step needs an entitlement that was not granted,
before it looks anything up or runs anything (whatever made the graph)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ocibuild.cache.store import Store
from ocibuild.errors import OcibuildError
from ocibuild.graph import ExecOp, ImageSource
from ocibuild.solver.solve import SolveOptions, Solver

BASE = ImageSource(ref="busybox:latest", manifest_digest="sha256:" + "a" * 64,
                   platform="linux/amd64")


class _NoSnapshotter:
    """Fails the test if the solver gets as far as asking for a root filesystem."""

    kind = "native"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the solver used the snapshotter ({name})")


@pytest.mark.parametrize(("fields", "reason"), [
    ({"network": "host"}, "--network=host: network.host is not allowed"),
    ({"security": "insecure"}, "--security=insecure: security.insecure is not allowed"),
])
def test_a_step_needing_an_entitlement_not_granted_stops_the_solve(
        tmp_path: Path, fields: dict[str, str], reason: str) -> None:
    run = ExecOp(BASE, ("true",), **fields)
    opts = SolveOptions(names={run.digest: "[2/2] RUN true"})
    solver = Solver(Store.open(tmp_path / "store"), _NoSnapshotter(), opts)  # type: ignore[arg-type]
    with pytest.raises(OcibuildError) as info:
        solver.solve(run)
    assert info.value.message.startswith(f"[2/2] RUN true: {reason}; pass --allow ")
    assert not list((tmp_path / "store").rglob("ocibuild-solve-*"))  # nothing left behind
