"""run_step: have the fork server start a process for one step, feed it, stream its
output back."""

from __future__ import annotations

import os
import selectors
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ocibuild import unixsocket
from ocibuild.sandbox import availability, protocol
from ocibuild.sandbox.cleanup import remove_created
from ocibuild.sandbox.errors import SandboxError
from ocibuild.sandbox.idmapping import MappingPlan
from ocibuild.sandbox.spec import (
    DEFAULT_PATH,
    BindMount,
    CacheMount,
    Isolation,
    Mount,
    RootFS,
    SecretMount,
    SSHMount,
    StepResult,
    StepSpec,
    TmpfsMount,
    step_options_config,
)
from ocibuild.sandbox.zygote_client import spawn_step_process

Sink = Callable[[bytes], None]

MAX_LINE = 64 * 1024  # a longer line reaches the sink in pieces of this size
DRAIN_AFTER_EXIT = 1.0  # seconds to wait for output still buffered after the helper ended


def _mount_config(mount: Mount, env: dict[str, str]) -> dict[str, object]:
    if not mount.target.startswith("/"):
        raise SandboxError(f"mount target must be an absolute path: {mount.target!r}")
    if isinstance(mount, BindMount):
        if not mount.source.exists():
            raise SandboxError(f"bind mount source {mount.source} does not exist")
        return {"type": "bind", "source": str(mount.source.resolve()), "target": mount.target,
                "readonly": mount.readonly}
    if isinstance(mount, CacheMount):
        mount.source.mkdir(parents=True, exist_ok=True)
        return {"type": "cache", "source": str(mount.source.resolve()), "target": mount.target,
                "readonly": False}
    if isinstance(mount, SSHMount):
        if not mount.socket.exists():
            raise SandboxError(f"SSH agent socket {mount.socket} does not exist")
        env.setdefault("SSH_AUTH_SOCK", mount.target)
        return {"type": "ssh", "source": str(mount.socket.resolve()), "target": mount.target,
                "readonly": False}
    if isinstance(mount, TmpfsMount):
        return {"type": "tmpfs", "target": mount.target, "size": mount.size,
                "mode": mount.mode}
    if isinstance(mount, SecretMount):
        if (mount.source is None) == (mount.data is None):
            raise SandboxError(f"secret at {mount.target} needs exactly one of source or data")
        if mount.source is not None and not mount.source.is_file():
            raise SandboxError(f"secret source {mount.source} is not a readable file")
        return {"type": "secret", "target": mount.target,
                "source": None if mount.source is None else str(mount.source.resolve()),
                "data": mount.data, "mode": mount.mode, "uid": mount.uid, "gid": mount.gid}
    raise SandboxError(f"unknown mount type {type(mount).__name__}")


_network_warned = False


def _network_mode(spec: StepSpec, on_stderr: Sink) -> str:
    """The network mode the step gets: "default" (its own namespace through the
    user-mode network helper) falls back to the host's where the helper cannot run,
    with a warning the first time in this process."""
    global _network_warned
    if spec.network != "default":
        return spec.network
    from ocibuild.sandbox import usernet

    reason = usernet.unavailable_reason()
    if reason is None:
        return "default"
    if not _network_warned:
        _network_warned = True
        on_stderr(f"ocibuild: {reason}\n".encode())
    return "host"


def _config(spec: StepSpec, isolation: Isolation) -> dict[str, object]:
    if not spec.argv:
        raise SandboxError("a step needs a command (argv is empty)")
    if not spec.cwd.startswith("/"):
        raise SandboxError(f"working directory must be absolute: {spec.cwd!r}")
    if spec.network not in ("default", "none", "host"):
        raise SandboxError(f"unknown network mode {spec.network!r} (default, none or host)")
    if spec.security not in ("sandbox", "insecure"):
        raise SandboxError(f"unknown security mode {spec.security!r} (sandbox or insecure)")
    env = dict(spec.env)
    mounts = [_mount_config(m, env) for m in spec.mounts]
    conf: dict[str, object] = {
        "isolation": isolation, "mapping": "none", "network": spec.network,
        "hostname": spec.hostname, "security": spec.security, "staging": None, "mounts": mounts,
        "argv": [str(a) for a in spec.argv], "env": env, "cwd": spec.cwd, "user": spec.user,
        "default_path": DEFAULT_PATH, "rootfs": None, "overlay": None,
        **step_options_config(spec),
    }
    conf.update(_root_config(spec.rootfs))
    return conf


def _root_config(rootfs: Path | RootFS) -> dict[str, object]:
    """The root as the step's helper reads it: "rootfs" (a directory) or "overlay"."""
    if not isinstance(rootfs, RootFS) or rootfs.is_directory:
        directory = rootfs.path if isinstance(rootfs, RootFS) else Path(rootfs)
        if not directory.is_dir():
            raise SandboxError(f"root filesystem {directory} is not a directory")
        return {"rootfs": str(directory.resolve())}
    if rootfs.upper is None or rootfs.work is None:
        raise SandboxError("a step's overlay root needs an upper and a work directory")
    # absolute, as the helper's working directory is not ours; not resolved (~20 lstat
    # calls a step): the kernel follows links in each path the mount options name, and
    # splits the options at ':' and ',' before, so only the paths as given are checked
    layers = [os.path.abspath(p) for p in rootfs.lowers]
    upper, work = os.path.abspath(rootfs.upper), os.path.abspath(rootfs.work)
    for path in [*layers, upper, work]:
        if any(c in path for c in ":,"):
            raise SandboxError(f"overlay directory paths cannot contain ':' or ',': {path}")
    return {"overlay": {"lower": list(reversed(layers)),  # overlayfs lists the top first
                        "upper": upper, "work": work}}


def _written_dir(rootfs: Path | RootFS) -> Path:
    """Where a step's changes land: an overlay's upper directory, else the root."""
    if isinstance(rootfs, RootFS):
        return Path(rootfs.upper) if rootfs.upper is not None else rootfs.path
    return Path(rootfs)


class _LineSplitter:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.pending = b""

    def feed(self, data: bytes) -> None:
        self.pending += data
        while True:
            cut = self.pending.find(b"\n")
            if cut < 0:
                if len(self.pending) >= MAX_LINE:
                    self.sink(self.pending[:MAX_LINE])
                    self.pending = self.pending[MAX_LINE:]
                    continue
                return
            line, self.pending = self.pending[:cut + 1], self.pending[cut + 1:]
            self.sink(line)

    def close(self) -> None:
        if self.pending:
            self.sink(self.pending)
            self.pending = b""


class _Session:
    """One step's process: its pipes, its control messages, its end."""

    def __init__(self, conf: dict[str, object], on_stdout: Sink, on_stderr: Sink,
                 cancel: threading.Event | None) -> None:
        self.conf, self.cancel = conf, cancel
        self.plan: MappingPlan | None = None
        self.out = _LineSplitter(on_stdout)
        self.saw_einval = False
        self.err = _LineSplitter(self._stderr_line(on_stderr))
        self.decoder = protocol.Decoder()
        self.created: list[str] | None = None
        self.protocol_error: protocol.ProtocolError | None = None
        self.status: int | None = None
        self.error: str | None = None
        self.step_pgid: int | None = None
        self.cancelled = False

    def _stderr_line(self, sink: Sink) -> Sink:
        def line(data: bytes) -> None:
            if b"Invalid argument" in data:
                self.saw_einval = True
            sink(data)
        return line

    def run(self) -> StepResult:
        ctl, ctl_child = unixsocket.pair()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            try:
                server = spawn_step_process(self.conf["isolation"],  # type: ignore[arg-type]
                                            ctl_child.fileno(), out_w, err_w)
            finally:
                ctl_child.close()
                os.close(out_w)
                os.close(err_w)
            self.plan = server.plan
            self.conf["staging"] = str(server.staging)
            if self.conf["isolation"] == "userns":
                self.conf["mapping"] = self.plan.kind
            try:
                ctl.sendall(protocol.encode(protocol.CONFIG, self.conf))
            except OSError:
                pass  # the step process is gone already; its error message is on ctl
            self._pump(out_r, err_r, ctl)
        finally:
            if self.step_pgid and self.status is None:
                self._kill_group()
            ctl.close()
            os.close(out_r)
            os.close(err_r)
        return self._result()

    def _kill_group(self) -> None:
        # without namespaces (chroot fallback) the step's process group is what to kill
        try:
            os.killpg(self.step_pgid, signal.SIGKILL)  # type: ignore[arg-type]
        except ProcessLookupError:
            pass

    def _cancel(self, ctl: unixsocket.Socket) -> None:
        # The step process watches its control socket: shutting our end kills the step
        # (its PID namespace dies with init); we keep reading what it already said.
        self.cancelled = True
        if self.step_pgid:
            self._kill_group()
        try:
            ctl.shutdown(unixsocket.SHUT_WR)
        except OSError:
            pass

    def _pump(self, out_r: int, err_r: int, ctl: unixsocket.Socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(out_r, selectors.EVENT_READ, self.out)
        sel.register(err_r, selectors.EVENT_READ, self.err)
        sel.register(ctl.fileno(), selectors.EVENT_READ, None)
        drain_deadline: float | None = None
        with sel:
            while sel.get_map():
                for key, _ in sel.select(0.05 if self.cancel else 0.25):
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fd)
                        if key.data is not None:
                            key.data.close()
                        else:  # the step process and its init have ended
                            drain_deadline = time.monotonic() + DRAIN_AFTER_EXIT
                    elif key.data is None:
                        self._take_messages(data, ctl)
                    else:
                        key.data.feed(data)
                if self.cancel is not None and self.cancel.is_set() and not self.cancelled:
                    self._cancel(ctl)
                if drain_deadline is not None and time.monotonic() > drain_deadline:
                    break  # an escaped process still holds the pipes; stop listening
            for key in list(sel.get_map().values()):
                if key.data is not None:
                    key.data.close()

    def _take_messages(self, data: bytes, ctl: unixsocket.Socket) -> None:
        if self.protocol_error is not None:
            return
        try:
            self._on_messages(self.decoder.feed(data))
        except protocol.ProtocolError as e:
            self.protocol_error = e
            self._cancel(ctl)  # a helper that says nonsense is not trusted to go on

    def _on_messages(self, messages: list[tuple[str, bytes]]) -> None:
        """Take the step process's messages, each only where the conversation allows
        it: CREATED once, before the end; STEP_PGID once, and only without namespaces
        (chroot isolation); the first EXITED or ERROR ends it (a later ERROR is
        ignored). Anything else is a protocol error, which kills the step."""
        for kind, payload in messages:
            if self.status is not None or self.error is not None:
                if kind == protocol.ERROR:
                    continue  # a second failure report (init's, then its supervisor's)
                raise protocol.ProtocolError(f"{kind!r} after the step ended")
            if kind == protocol.CREATED and self.created is None:
                self.created = protocol.parse_relative_paths(payload)
            elif (kind == protocol.STEP_PGID and self.step_pgid is None
                  and self.conf["isolation"] == "chroot"):
                pgid = protocol.parse_int(payload, 1 << 22)
                if pgid <= 1:
                    raise protocol.ProtocolError(f"process group {pgid}")
                self.step_pgid = pgid
            elif kind == protocol.EXITED:
                self.status = protocol.parse_int(payload, protocol.MAX_STATUS)
            elif kind == protocol.ERROR:
                self.error = protocol.parse_text(payload)
            else:
                raise protocol.ProtocolError(f"unexpected {kind!r}")

    def _result(self) -> StepResult:
        if self.protocol_error is not None:
            raise self.protocol_error
        if self.cancelled:
            return StepResult(exit_code=None, signal=signal.SIGKILL, cancelled=True)
        plan = self.plan
        single = plan is not None and self.conf["mapping"] == "single"
        if self.error is not None:
            message = self.error
            if single and "mapped" in message:
                message += f" ({plan.single_mapping_hint()})"  # type: ignore[union-attr]
            raise SandboxError(message)
        if self.status is None:
            raise SandboxError("the sandbox helper ended without a result")
        if os.WIFSIGNALED(self.status):
            return StepResult(exit_code=None, signal=os.WTERMSIG(self.status))
        code = os.WEXITSTATUS(self.status)
        hint = ""
        if code != 0 and self.saw_einval and single:
            hint = plan.single_mapping_hint()  # type: ignore[union-attr]
            self.err.sink(f"ocibuild: note: {hint}\n".encode())
        return StepResult(exit_code=code, hint=hint)


def run_step(spec: StepSpec, *, on_stdout: Sink, on_stderr: Sink,
             isolation: Isolation | Literal["auto"] = "userns",
             cancel: threading.Event | None = None) -> StepResult:
    """Run one step in a sandbox and return how it ended.

    Output reaches `on_stdout`/`on_stderr` a line at a time (newline included) while the
    step runs, called from this thread. Setting `cancel` kills every process of the
    step at once; the result then has `cancelled=True`. A failure to set the sandbox up
    (a missing user, a mount that cannot be made, namespaces disabled) raises
    SandboxError; the step's own failure is a StepResult with a non-zero status.

    The step's processes come from a fork server that this process starts on first use
    (one per isolation mode) and that lives as long as this process; a step dies when
    this process does, however it ends.

    `isolation` is "userns", "chroot" (root only) or "auto", resolved as `--isolation
    auto` is (availability.choose; a build shows its notice).
    """
    if isolation not in availability.ISOLATIONS:
        raise SandboxError(f"unknown isolation {isolation!r} (auto, userns or chroot)")
    if isolation == "auto" or (isolation == "chroot" and os.geteuid() != 0):
        isolation = availability.choose(isolation).isolation
    conf = _config(spec, isolation)
    if isolation == "userns" or availability.probe().namespaces:
        conf["network"] = _network_mode(spec, on_stderr)
    # else a bare chroot: the step shares the host's network whatever the helper can do
    session = _Session(conf, on_stdout, on_stderr, cancel)
    try:
        return session.run()
    finally:
        if session.created:
            remove_created(_written_dir(spec.rootfs), session.created)
