"""The solver alone: cache hits and misses, lazy --cache-from hits, failures,
cancellation and scheduling, with an in-memory snapshotter and a fake step runner
(tests/support): no namespaces, no sandbox, milliseconds a test."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ocibuild.cache.remote.lookup import LayoutBlobSource, RemoteRecords
from ocibuild.cache.store import Store
from ocibuild.errors import OcibuildError, StepFailedError
from ocibuild.graph import ContextSource, CopyOp, ExecOp, Mount, Op, ScratchSource, walk
from ocibuild.progress.events import Event
from ocibuild.solver.checksum import KeptChecksums
from ocibuild.solver.solve import SolveOptions, Solver
from tests.support.fake_runner import FakeRunner
from tests.support.fake_snapshotter import MemorySnapshotter

SCRATCH = ScratchSource()


def run(root: Op, script: str, **kw: Any) -> ExecOp:
    return ExecOp(root=root, args=("/bin/sh", "-c", script), **kw)


def chain(*scripts: str, base: Op = SCRATCH) -> list[ExecOp]:
    ops = []
    for script in scripts:
        base = run(base, script)
        ops.append(base)
    return ops


@dataclass
class World:
    """A store, a snapshotter and a runner shared by the solves of one test."""

    tmp: Path
    stacks_pending: bool = False
    store: Store = field(init=False)
    snap: MemorySnapshotter = field(init=False)
    runner: FakeRunner = field(init=False)
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = Store.open(self.tmp / "store")
        self.fresh()

    def fresh(self) -> None:
        """A new snapshotter and runner, as a new build has (the store stays)."""
        (self.tmp / "roots").mkdir(exist_ok=True)
        self.snap = MemorySnapshotter(self.store, self.tmp / "roots",
                                      stacks_pending=self.stacks_pending)
        self.runner = FakeRunner()
        self.events = []

    def solver(self, target: Op, **opts: Any) -> Solver:
        names = {op.digest: f"[{i}] RUN {op.args[-1]}" for i, op in
                 enumerate((o for o in walk(target) if isinstance(o, ExecOp)), start=1)}
        options = SolveOptions(names=names, jobs=opts.pop("jobs", 4), **opts)
        return Solver(self.store, self.snap, options, self.events.append, runner=self.runner)

    def solve(self, target: Op, **opts: Any) -> tuple[Solver, dict[str, Any]]:
        solver = self.solver(target, **opts)
        return solver, solver.solve(target)

    def files(self, result: Any) -> dict[str, str]:
        return self.snap.files(result.layers)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.fixture(params=[False, True], ids=["plain", "stacking"])
def world(tmp_path: Path, request: pytest.FixtureRequest) -> World:
    return World(tmp_path, stacks_pending=request.param)


@pytest.fixture
def plain(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_first_solve_runs_every_step_and_stacks_their_changes(world: World) -> None:
    a, b = chain("write a 1", "write b 2; write a 3")
    _, results = world.solve(b)
    assert world.runner.ran == ["write a 1", "write b 2; write a 3"]
    assert world.files(results[b.digest]) == {"a": "3", "b": "2"}
    assert len(results[b.digest].layers) == 2


def test_a_second_solve_is_all_hits_and_makes_no_root(world: World) -> None:
    ops = chain("write a 1", "write b 2")
    _, first = world.solve(ops[-1])
    world.fresh()
    _, second = world.solve(ops[-1])
    assert world.runner.ran == []
    assert world.snap.materialized == 0
    assert world.snap.warmed == 0 and world.runner.prestarted == []
    assert second[ops[-1].digest].layers == first[ops[-1].digest].layers
    assert world.kinds() == ["cached", "cached"]


def test_a_changed_step_misses_and_everything_above_it_reruns(plain: World) -> None:
    plain.solve(chain("write a 1", "write b 2", "write c 3")[-1])
    plain.fresh()
    plain.solve(chain("write a 1", "write b 9", "write c 3")[-1])
    assert plain.runner.ran == ["write b 9", "write c 3"]
    assert plain.kinds() == ["cached", "started", "done", "started", "done"]


def test_a_step_that_changes_nothing_adds_no_layer_and_is_still_cached(plain: World) -> None:
    a, b = chain("write a 1", "echo nothing")
    _, results = plain.solve(b)
    assert results[b.digest].layer is None
    assert len(results[b.digest].layers) == 1
    plain.fresh()
    plain.solve(b)
    assert plain.runner.ran == []


def test_no_cache_runs_every_step_again(plain: World) -> None:
    ops = chain("write a 1", "write b 2")
    plain.solve(ops[-1])
    plain.fresh()
    plain.solve(ops[-1], no_cache=True)
    assert plain.runner.ran == ["write a 1", "write b 2"]


def test_no_cache_of_one_stage_reruns_only_its_steps(plain: World) -> None:
    a, b = chain("write a 1", "write b 2")
    plain.solve(b)
    plain.fresh()
    plain.solve(b, stage_of_op={a.digest: "base", b.digest: "final"},
                no_cache_stages=frozenset({"final"}))
    assert plain.runner.ran == ["write b 2"]


def test_a_record_whose_layer_blob_is_gone_is_not_a_hit(plain: World) -> None:
    (a,) = chain("write a 1")
    _, results = plain.solve(a)
    layer = results[a.digest].layer
    plain.store.layout.blob_path(layer.descriptor.digest).unlink()
    plain.fresh()
    plain.solve(a)
    assert plain.runner.ran == ["write a 1"]


def test_keys_follow_the_command_the_environment_and_the_epoch(plain: World) -> None:
    def key(op: ExecOp, **opts: Any) -> str:
        solver = plain.solver(op, **opts)
        solver.keys[SCRATCH.digest] = solver.compute_key(SCRATCH)
        return solver.compute_key(op)

    op = run(SCRATCH, "write a 1")
    assert key(op) == key(run(SCRATCH, "write a 1"))
    assert key(op) != key(run(SCRATCH, "write a 2"))
    assert key(op) != key(run(SCRATCH, "write a 1", env=("X=1",)))
    assert key(op) != key(op, source_date_epoch=0)


def test_both_snapshotter_modes_make_the_same_layers(tmp_path: Path) -> None:
    layers = []
    for stacking in (False, True):
        w = World(tmp_path / str(stacking), stacks_pending=stacking)
        ops = chain("write a 1", "write b 2; write a 3", "write c/d 4")
        _, results = w.solve(ops[-1])
        layers.append([ref.descriptor.digest for ref in results[ops[-1].digest].layers])
    assert layers[0] == layers[1]


def test_every_root_is_released_when_the_solve_ends(world: World) -> None:
    world.solve(chain("write a 1", "write b 2", "write c 3")[-1])
    assert world.snap.materialized == 3
    assert world.snap.live == set()


def test_a_stacking_snapshotter_gets_the_pending_directory_of_the_step_below(
        tmp_path: Path) -> None:
    w = World(tmp_path, stacks_pending=True)
    prepared: list[tuple[Any, ...]] = []
    prepare = w.snap.prepare
    w.snap.prepare = lambda layers: prepared.append(tuple(layers)) or prepare(layers)  # type: ignore[method-assign]
    w.solve(chain("write a 1", "write b 2")[-1])
    assert prepared[0] == ()
    assert len(prepared[1]) == 1 and isinstance(prepared[1][0], Path)


# -- --cache-from: remote hits --------------------------------------------------------------

def remote_of(tmp: Path, target: Op, only: str = "") -> tuple[RemoteRecords, list[str]]:
    """Records of a build of `target` made elsewhere (those whose step names hold
    `only`), their blobs in that store's layout."""
    other = World(tmp / "elsewhere")
    solver, _ = other.solve(target)
    records = [r for r in solver.step_records.values() if only in r.description]
    remote = RemoteRecords()
    remote.add(records, LayoutBlobSource(other.store.layout))
    return remote, [r.layer.digest for r in records if r.layer is not None]


def test_remote_hits_run_nothing_and_fetch_only_the_target_layers(plain: World,
                                                                  tmp_path: Path) -> None:
    ops = chain("write a 1", "write b 2")
    remote, digests = remote_of(tmp_path, ops[-1])
    _, results = plain.solve(ops[-1], remote=remote)
    assert plain.runner.ran == []
    assert sorted(remote.fetched) == sorted(digests)
    assert plain.files(results[ops[-1].digest]) == {"a": "1", "b": "2"}


def test_a_stage_only_a_remote_hit_mounted_is_neither_run_nor_fetched(plain: World,
                                                                      tmp_path: Path) -> None:
    (builder,) = chain("write tool 1")
    final = run(SCRATCH, "write out 2", mounts=(Mount("bind", "/b", source=builder),))
    remote, digests = remote_of(tmp_path, final, only="write out")
    plain.solve(final, remote=remote)
    assert plain.runner.ran == []
    assert remote.fetched == digests and len(digests) == 1


def test_a_step_that_runs_on_a_remote_hit_fetches_the_layers_below_it(plain: World,
                                                                     tmp_path: Path) -> None:
    a, b = chain("write a 1", "write b 2")
    remote, digests = remote_of(tmp_path, a)
    _, results = plain.solve(b, remote=remote)
    assert plain.runner.ran == ["write b 2"]
    assert remote.fetched == digests
    assert plain.files(results[b.digest]) == {"a": "1", "b": "2"}


def test_remote_hits_become_local_records(plain: World, tmp_path: Path) -> None:
    ops = chain("write a 1", "write b 2")
    remote, _ = remote_of(tmp_path, ops[-1])
    solver, _ = plain.solve(ops[-1], remote=remote)
    assert solver.cache_use() is None  # no rebuild memo stands on a remote record
    plain.fresh()
    solver, _ = plain.solve(ops[-1])
    assert plain.runner.ran == []
    assert solver.cache_use() is not None


# -- failures and cancellation ---------------------------------------------------------------

def test_a_failing_step_raises_with_its_name_status_and_last_lines(plain: World) -> None:
    a, b = chain("write a 1", "echo one; echo two; exit 3")
    with pytest.raises(StepFailedError) as info:
        plain.solve(b)
    assert info.value.name == "[2] RUN echo one; echo two; exit 3"
    assert info.value.returncode == 3
    assert info.value.tail == ["one", "two"]
    assert "exit code: 3" in info.value.message
    assert plain.kinds()[-1] == "failed"


def test_a_failed_step_records_nothing_but_the_steps_below_it_do(plain: World) -> None:
    a, b = chain("write a 1", "exit 1")
    with pytest.raises(StepFailedError):
        plain.solve(b)
    plain.fresh()
    with pytest.raises(StepFailedError):
        plain.solve(b)
    assert plain.runner.ran == ["exit 1"]


def test_a_runtime_failure_names_the_step(plain: World) -> None:
    (a,) = chain("raise no user namespaces")
    with pytest.raises(OcibuildError, match=r"^\[1\] RUN raise no user namespaces: "
                                            r"no user namespaces$"):
        plain.solve(a)


def test_a_failed_solve_releases_every_root(world: World) -> None:
    with pytest.raises(StepFailedError):
        world.solve(chain("write a 1", "write b 2", "exit 1")[-1])
    assert world.snap.materialized == 3
    assert world.snap.live == set()


def two_branches(left: str, right: str) -> ExecOp:
    """A step over `left` that mounts `right`: the two run side by side."""
    (other,) = chain(right)
    (below,) = chain(left)
    return run(below, "write top 1", mounts=(Mount("bind", "/o", source=other),))


def test_a_failure_cancels_the_steps_running_beside_it(plain: World) -> None:
    top = two_branches("hold never", "after never; exit 5")
    with pytest.raises(StepFailedError) as info:
        plain.solve(top)
    assert info.value.returncode == 5
    assert plain.runner.cancelled == ["hold never"]
    assert "write top 1" not in plain.runner.ran


def test_entitlements_are_checked_before_anything_runs(plain: World) -> None:
    op = run(SCRATCH, "write a 1", network="host")
    with pytest.raises(OcibuildError, match="network.host"):
        plain.solve(op)
    assert plain.runner.ran == [] and plain.events == []


# -- scheduling -------------------------------------------------------------------------------

@contextlib.contextmanager
def solving(w: World, target: Op, **opts: Any) -> Iterator[None]:
    """The solve runs in a thread while the block drives its gates."""
    errors: list[BaseException] = []

    def go() -> None:
        try:
            w.solve(target, **opts)
        except BaseException as exc:  # noqa: BLE001 (shown by the test)
            errors.append(exc)
    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    try:
        yield
    finally:
        for gate in w.runner.gates.values():
            gate.set()
        thread.join(10)
    assert not thread.is_alive() and errors == []


def test_independent_steps_run_at_once(plain: World) -> None:
    top = two_branches("hold left", "hold right")
    with solving(plain, top, jobs=2):
        assert plain.runner.reached("left").wait(5)
        assert plain.runner.reached("right").wait(5)  # both started: neither waits
        plain.runner.gate("left").set()
        plain.runner.gate("right").set()
    assert plain.runner.most_at_once == 2


def test_one_job_runs_one_step_at_a_time(plain: World) -> None:
    plain.solve(two_branches("write l 1", "write r 1"), jobs=1)
    assert plain.runner.most_at_once == 1
    assert len(plain.runner.ran) == 3


def test_a_step_starts_only_once_its_inputs_are_done(plain: World) -> None:
    top = two_branches("hold left", "write r 1")
    with solving(plain, top, jobs=4):
        assert plain.runner.reached("left").wait(5)
        assert "write top 1" not in plain.runner.ran
        plain.runner.gate("left").set()
    assert plain.runner.ran[-1] == "write top 1"


def test_cached_steps_are_reported_in_step_order(plain: World) -> None:
    ops = chain("write a 1", "write b 2", "write c 3")
    plain.solve(ops[-1])
    plain.fresh()
    plain.solve(ops[-1], jobs=1)
    assert [(e.kind, e.index) for e in plain.events] == [("cached", 1), ("cached", 2),
                                                         ("cached", 3)]


def _checkout(path: Path, umask: int) -> Path:
    """A file, an executable script and a directory, as a clone under `umask` has them."""
    (path / "dir").mkdir(parents=True)
    for rel, executable in (("app.conf", False), ("run.sh", True), ("dir/a.txt", False)):
        (path / rel).write_text(rel)
        (path / rel).chmod((0o777 if executable else 0o666) & ~umask)
    for directory in (path, path / "dir"):
        directory.chmod(0o777 & ~umask)
    return path


@pytest.mark.parametrize("context", ["context", "shared"])
def test_git_modes_give_clones_under_two_umasks_one_key(plain: World, tmp_path: Path,
                                                        context: str) -> None:
    """The build context and a named directory context alike; a COPY and a bind mount."""
    copy = CopyOp(root=SCRATCH, source=ContextSource(name=context),
                  sources=("app.conf", "run.sh", "dir"), dest="/app/")
    mounted = run(SCRATCH, "true", mounts=(Mount(
        type="bind", target="/src", source=ContextSource(name=context)),))

    def keys(checkout: Path, git_modes: bool) -> tuple[str, str]:
        dirs = {"context_dir": checkout} if context == "context" \
            else {"context_dirs": {context: checkout}}
        solver = plain.solver(copy, git_modes=git_modes, **dirs)
        for op in (*walk(copy), *walk(mounted)):  # inputs first
            solver.keys[op.digest] = solver.compute_key(op)
        return solver.keys[copy.digest], solver.keys[mounted.digest]

    loose = _checkout(tmp_path / "loose", 0o002)
    strict = _checkout(tmp_path / "strict", 0o022)
    assert keys(loose, True) == keys(strict, True)
    assert all(a != b for a, b in zip(keys(loose, False), keys(strict, False), strict=True))


def test_the_rebuild_memos_second_build_takes_the_first_builds_checksums(
        plain: World, tmp_path: Path) -> None:
    """While a KeptChecksums is active a later solve reuses the context checksums (and
    what --explain-cache compares) instead of reading the context again; no other
    solve does."""
    context = tmp_path / "ctx"
    (context / "dir").mkdir(parents=True)
    (context / "dir" / "a.txt").write_text("a")
    copy = CopyOp(root=SCRATCH, source=ContextSource(), sources=("dir",), dest="/app/")

    def key() -> tuple[str, object]:
        solver = plain.solver(copy, context_dir=context)
        for op in walk(copy):  # inputs first
            solver.keys[op.digest] = solver.compute_key(op)
        return solver.keys[copy.digest], solver.key_inputs[copy.digest]["explain"]

    kept = KeptChecksums()
    with kept.active():
        first = key()
    (context / "dir" / "a.txt").write_text("changed")
    with kept.active():
        assert key() == first
    assert key()[0] != first[0]
    with KeptChecksums().active():
        assert key()[0] != first[0]


def test_several_targets_share_one_schedule_and_a_common_step_runs_once(plain: World) -> None:
    """A multi-platform build's graphs: the step both need (a $BUILDPLATFORM stage) runs
    once, each target's own steps run, and both results come back."""
    shared = run(SCRATCH, "write tool 1")
    amd64, arm64 = run(shared, "write arch amd64"), run(shared, "write arch arm64")
    solver = plain.solver(amd64)
    results = solver.solve([amd64, arm64])
    assert sorted(plain.runner.ran) == ["write arch amd64", "write arch arm64", "write tool 1"]
    assert plain.files(results[amd64.digest]) == {"tool": "1", "arch": "amd64"}
    assert plain.files(results[arm64.digest]) == {"tool": "1", "arch": "arm64"}
