"""Running a RUN op: its root from the snapshotter, its mounts, the sandbox, the commit."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ocibuild.errors import OcibuildError, StepFailedError
from ocibuild.graph import ContextSource, ExecOp, InlineSource, Mount
from ocibuild.progress.events import Event
from ocibuild.solver import selection
from ocibuild.solver.results import OpResult

if TYPE_CHECKING:
    from ocibuild.dockerignore import IgnoreMatcher
    from ocibuild.snapshot.base import Prepared
    from ocibuild.solver.view import SolverView

TAIL_LINES = 10


class _Output:
    """Turns a step's output into log events, keeping the last lines for errors.

    Output is cut into lines per stream before secrets are masked, so a secret split
    across two reads of a pipe is still masked."""

    MAX_LINE = 64 * 1024  # a longer line without a newline is shown in pieces

    def __init__(self, solver: SolverView, op: ExecOp) -> None:
        self.solver = solver
        self.op = op
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.secrets: list[bytes] = []
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def stream(self, name: str) -> Callable[[bytes], None]:
        def feed(data: bytes) -> None:
            buf = self._partial[name] + data
            *lines, rest = buf.split(b"\n")
            if len(rest) > self.MAX_LINE:
                lines.append(rest)
                rest = b""
            self._partial[name] = rest
            for line in lines:
                self._line(line, name)
        return feed

    def flush(self) -> None:
        for name, rest in self._partial.items():
            if rest:
                self._line(rest, name)
            self._partial[name] = b""

    def _line(self, data: bytes, stream: str) -> None:
        for secret in self.secrets:
            if secret:
                data = data.replace(secret, b"****")
        line = data.decode(errors="replace").rstrip("\r")
        self.tail.append(line)
        index = self.solver.index.get(self.op.digest)
        if index is not None:
            self.solver.progress(Event("log", index, self.solver.opts.names[self.op.digest],
                                       time.monotonic(), text=line, digest=self.op.digest,
                                       stream=2 if stream == "stderr" else 1))


def _sandbox_mount(solver: SolverView, op: ExecOp, m: Mount, stack: contextlib.ExitStack,
                   env: dict[str, str], output: _Output) -> Any | None:
    from ocibuild import sandbox

    if m.type == "cache":
        from ocibuild.solver.cache_seed import open_cache

        path = stack.enter_context(open_cache(solver, m))
        return sandbox.CacheMount(path, m.target)
    if m.type == "tmpfs":
        return sandbox.TmpfsMount(m.target, m.size or None)
    if m.type == "secret":
        src = solver.opts.secrets.get(m.id)
        data = src.data() if src is not None else None
        if data is None:
            if m.required:
                raise OcibuildError(f"secret {m.id} not found (give it with --secret "
                                    f"id={m.id},src=FILE)")
            return None
        output.secrets.append(data.strip())
        if m.env:
            env[m.env] = data.decode(errors="replace")
            if not m.target:
                return None
        return sandbox.SecretMount(m.target, data=data,
                                   mode=m.mode if m.mode is not None else 0o400,
                                   uid=m.uid or 0, gid=m.gid or 0)
    if m.type == "ssh":
        sock = solver.opts.ssh.get(m.id or "default")
        if sock is None:
            if m.required:
                sid = m.id or "default"
                give = "--ssh default" if sid == "default" else f"--ssh {sid}=SOCKET"
                raise OcibuildError(f'no SSH key "{sid}" forwarded from the client '
                                    f"(give it with {give})")
            return None
        return sandbox.SSHMount(sock, m.target)
    # bind: from the context or a stage
    if isinstance(m.source, ContextSource):
        return _context_bind(solver, op, m, m.source, stack)
    if isinstance(m.source, InlineSource):  # a RUN here-document with a shebang
        return sandbox.BindMount(solver.inline_dir(m.source), m.target, readonly=True)
    assert m.source is not None
    layers = solver.local_layers(solver.result_of(m.source).layers)
    prepared = solver.snap.prepare_tree(layers)
    stack.callback(solver.release_later, prepared)
    base = prepared.root.path
    path = base / selection.scoped_resolve(base, m.source_path)
    return sandbox.BindMount(path, m.target, readonly=m.readonly)


def _context_bind(solver: SolverView, op: ExecOp, m: Mount, source: ContextSource,
                  stack: contextlib.ExitStack) -> Any:
    """A bind mount of a local context, showing what COPY would see of it: without what
    .dockerignore excludes. Writes to a rw bind mount are thrown away, never reach the
    context."""
    from ocibuild import sandbox
    from ocibuild.snapshot import trash
    from ocibuild.snapshot.base import new_step_dir
    from ocibuild.solver import context_mount

    ctx = solver.context_dir(source)
    if ctx is None:
        raise OcibuildError("a bind mount from the context needs a context")
    name = solver.opts.names.get(op.digest, "RUN")
    ignore = _ignore_of(solver, source)
    try:
        top = selection.scoped_resolve(ctx, m.source_path)
        git_modes = solver.opts.git_modes
        if m.readonly and not git_modes and not context_mount.any_ignored(ctx, top, ignore):
            return sandbox.BindMount(ctx / top, m.target, readonly=True)
        step_dir = new_step_dir(solver.store)
        stack.callback(trash.discard, solver.store, [step_dir])
        tree = step_dir / "src"
        kept = context_mount.filtered_tree(ctx, top, tree, ignore, link=m.readonly,
                                           git_modes=git_modes)
    except OSError as exc:
        raise OcibuildError(f"{name}: cannot mount {m.source_path} of the build context: "
                            f"{exc.strerror or exc}") from None
    if not kept:
        raise OcibuildError(f"{name}: {m.source_path}: not found in the build context")
    return sandbox.BindMount(tree, m.target, readonly=m.readonly)


def _ignore_of(solver: SolverView, source: ContextSource) -> IgnoreMatcher:
    """The .dockerignore matcher of a context source (none applies to a named context)."""
    from ocibuild.dockerignore import IgnoreMatcher

    if source.name in solver.opts.context_dirs:
        return IgnoreMatcher([])
    return IgnoreMatcher(list(solver.opts.ignore_patterns))


def run_exec(solver: SolverView, op: ExecOp, root: OpResult) -> Prepared:
    """Run the RUN op in a fresh root over `root`; returns the prepared root (its change
    not yet written as a layer)."""
    from ocibuild import sandbox

    env: dict[str, str] = {}
    for item in op.env:
        k, _, v = item.partition("=")
        env[k] = v
    output = _Output(solver, op)
    with contextlib.ExitStack() as stack:
        mounts = [x for m in op.mounts
                  if (x := _sandbox_mount(solver, op, m, stack, env, output)) is not None]
        prepared = solver.prepare(root.layers)
        if not solver.snap.stacks_pending:
            released = stack.enter_context(contextlib.ExitStack())
            released.callback(solver.release_later, prepared)
        spec = sandbox.StepSpec(rootfs=prepared.root, argv=list(op.args), env=env,
                                cwd=op.cwd or "/", user=op.user, mounts=mounts,
                                network=op.network,  # type: ignore[arg-type]
                                security=op.security,  # type: ignore[arg-type]
                                extra_hosts=op.extra_hosts, shm_size=op.shm_size or None,
                                ulimits=op.ulimits)
        try:
            result = solver.runner.run(spec, on_stdout=output.stream("stdout"),
                                       on_stderr=output.stream("stderr"),
                                       isolation=solver.opts.isolation, cancel=solver.cancelled)
        except OcibuildError as exc:
            raise OcibuildError(f"{solver.opts.names.get(op.digest, 'RUN')}: {exc.message}"
                                ) from None
        finally:
            output.flush()
        if not result.ok:
            shown = " ".join(op.args)
            code = result.exit_code if result.exit_code is not None else result.description
            message = (f'process "{shown}" did not complete successfully: exit code: {code}')
            if result.hint:
                message += f" ({result.hint})"
            raise StepFailedError(solver.opts.names.get(op.digest, "RUN"), message,
                                  list(output.tail), returncode=result.exit_code)
        if not solver.snap.stacks_pending:
            released.pop_all()  # the caller writes the layer, then releases
        return prepared
