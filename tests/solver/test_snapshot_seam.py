"""The solver's only view of snapshots is the Snapshotter protocol: it never asks which
snapshotter it holds, and every snapshotter (and the unit tests' fake) fills the whole
protocol."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import ocibuild
from ocibuild.oci.layerref import LayerRef
from ocibuild.snapshot import Snapshotter
from ocibuild.snapshot.native import NativeSnapshotter
from ocibuild.snapshot.overlay import OverlaySnapshotter
from ocibuild.solver.pending import PendingLayer, RemoteLayer
from tests.support.fake_snapshotter import MemorySnapshotter

PACKAGE = Path(ocibuild.__file__).parent
# a look at which snapshotter it is, or a member outside the protocol
PEEKING = re.compile(r"\bsnap(shotter)?\.kind\b|getattr\((self\.|solver\.)?snap(shotter)?\b"
                     r"|isinstance\([^)]*(Overlay|Native)Snapshotter")


def methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items()
            if callable(value) and not name.startswith("_")}


def test_nothing_outside_snapshot_asks_which_snapshotter_it_holds() -> None:
    found = [f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
             for path in PACKAGE.rglob("*.py") if "snapshot" not in path.parts
             for n, line in enumerate(path.read_text().splitlines(), start=1)
             if PEEKING.search(line)]
    assert found == []


@pytest.mark.parametrize("cls", [OverlaySnapshotter, NativeSnapshotter, MemorySnapshotter])
def test_every_snapshotter_fills_the_whole_protocol(cls: type) -> None:
    protocol = methods(Snapshotter)
    assert {"prepare", "source_view", "commit", "release", "release_all"} <= protocol
    assert protocol - methods(cls) == set()
    assert {"materialized", "stacks_pending"} <= set(Snapshotter.__annotations__)


def test_the_solver_declares_no_loose_types_for_snapshots() -> None:
    solve = (PACKAGE / "solver" / "solve.py").read_text()
    assert "prepared: Any" not in solve and "-> Any:\n        \"\"\"A root" not in solve


def test_layer_bytes_are_fetched_in_one_place_of_the_solver() -> None:
    """Every kind of layer (in the store, pending, remote) answers ensure_local; the solver
    asks for bytes in one function, whatever reads them (a root, a source, an output)."""
    askers = set()
    for path in (PACKAGE / "solver").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name != "ensure_local" and any(
                    isinstance(n, ast.Attribute) and n.attr in ("ensure_local", "ensure")
                    for n in ast.walk(node)):
                askers.add(f"{path.name}:{node.name}")
    assert askers == {"solve.py:_fetch_missing"}


@pytest.mark.parametrize("cls", [LayerRef, PendingLayer, RemoteLayer])
def test_every_layer_kind_fills_the_layer_protocol(cls: type) -> None:
    assert {"written", "ensure_local"} <= methods(cls)
    assert hasattr(cls, "ready")
