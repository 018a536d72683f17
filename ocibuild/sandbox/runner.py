"""run_step: start the sandbox helper for one step, feed it, stream its output back."""

from __future__ import annotations

import marshal
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import ocibuild
from ocibuild.errors import OcibuildError
from ocibuild.sandbox import protocol
from ocibuild.sandbox.cleanup import remove_created
from ocibuild.sandbox.errors import SandboxError
from ocibuild.sandbox.idmapping import MappingPlan, apply_mapping, plan_mapping
from ocibuild.sandbox.spec import (
    DEFAULT_PATH,
    BindMount,
    CacheMount,
    Isolation,
    Mount,
    OverlayRoot,
    SecretMount,
    SSHMount,
    StepResult,
    StepSpec,
    TmpfsMount,
)

Sink = Callable[[bytes], None]

_PACKAGE_PARENT = str(Path(ocibuild.__file__).resolve().parent.parent)
# -I -S: no site-packages scan and no environment influence; the helper only needs the
# standard library and this package, whose parent directory goes on sys.path.
HELPER_BOOT = (f"import sys;sys.path.insert(0,{_PACKAGE_PARENT!r});"
               "from ocibuild.sandbox.nsinit import main;main()")
MAX_LINE = 64 * 1024  # a longer line reaches the sink in pieces of this size
DRAIN_AFTER_EXIT = 1.0  # seconds to wait for output still buffered after the helper ended


def helper_command(module: str, *args: str) -> list[str]:
    boot = HELPER_BOOT.replace("ocibuild.sandbox.nsinit", module)
    return [sys.executable, "-I", "-S", "-c", boot, *args]


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


def _config(spec: StepSpec, plan: MappingPlan, isolation: Isolation,
            staging: Path) -> dict[str, object]:
    if not spec.argv:
        raise SandboxError("a step needs a command (argv is empty)")
    if not spec.cwd.startswith("/"):
        raise SandboxError(f"working directory must be absolute: {spec.cwd!r}")
    if spec.network not in ("default", "none", "host"):
        raise SandboxError(f"unknown network mode {spec.network!r} (default, none or host)")
    env = dict(spec.env)
    mounts = [_mount_config(m, env) for m in spec.mounts]
    conf: dict[str, object] = {
        "ppid": os.getpid(), "isolation": isolation,
        "mapping": plan.kind if isolation == "userns" else "none",
        "uid": os.geteuid(), "gid": os.getegid(), "network": spec.network,
        "hostname": spec.hostname, "staging": str(staging), "mounts": mounts,
        "argv": [str(a) for a in spec.argv], "env": env, "cwd": spec.cwd, "user": spec.user,
        "default_path": DEFAULT_PATH, "rootfs": None, "overlay": None,
    }
    if isinstance(spec.rootfs, OverlayRoot):
        layers = [str(Path(p).resolve()) for p in spec.rootfs.lower]
        for path in [*layers, str(spec.rootfs.upper), str(spec.rootfs.work)]:
            if any(c in path for c in ":,"):
                raise SandboxError(f"overlay directory paths cannot contain ':' or ',': {path}")
        conf["overlay"] = {"lower": list(reversed(layers)),  # overlayfs lists the top first
                           "upper": str(spec.rootfs.upper.resolve()),
                           "work": str(spec.rootfs.work.resolve())}
    else:
        if not Path(spec.rootfs).is_dir():
            raise SandboxError(f"root filesystem {spec.rootfs} is not a directory")
        conf["rootfs"] = str(Path(spec.rootfs).resolve())
    return conf


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
    """One run of the helper: its pipes, its control messages, its end."""

    def __init__(self, conf: dict[str, object], plan: MappingPlan, on_stdout: Sink,
                 on_stderr: Sink, cancel: threading.Event | None) -> None:
        self.conf, self.plan, self.cancel = conf, plan, cancel
        self.out = _LineSplitter(on_stdout)
        self.saw_einval = False
        self.err = _LineSplitter(self._stderr_line(on_stderr))
        self.decoder = protocol.Decoder()
        self.created: list[str] = []
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
        parent_sock, child_sock = socket.socketpair()
        with parent_sock:
            try:
                proc = subprocess.Popen(
                    helper_command("ocibuild.sandbox.nsinit", str(child_sock.fileno())),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    pass_fds=(child_sock.fileno(),), start_new_session=True, env={})
            finally:
                child_sock.close()
            try:
                assert proc.stdin is not None
                try:
                    proc.stdin.write(marshal.dumps(self.conf))
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
                self._pump(proc, parent_sock)
            finally:
                if proc.poll() is None:
                    self._kill(proc)
                proc.wait()
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
        return self._result(proc.returncode)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        # The helper's death takes its PID namespace with it (parent-death signals);
        # without namespaces (chroot fallback) the step's process group goes too.
        for kill in ((lambda: os.killpg(self.step_pgid, signal.SIGKILL))
                     if self.step_pgid else None, lambda: proc.kill()):
            if kill is not None:
                try:
                    kill()
                except ProcessLookupError:
                    pass

    def _pump(self, proc: subprocess.Popen[bytes], ctl: socket.socket) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ, self.out)
        sel.register(proc.stderr.fileno(), selectors.EVENT_READ, self.err)
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
                    elif key.data is None:
                        self._on_messages(proc, ctl, self.decoder.feed(data))
                    else:
                        key.data.feed(data)
                if self.cancel is not None and self.cancel.is_set() and not self.cancelled:
                    self.cancelled = True
                    self._kill(proc)
                if drain_deadline is None and proc.poll() is not None:
                    drain_deadline = time.monotonic() + DRAIN_AFTER_EXIT
                if drain_deadline is not None and time.monotonic() > drain_deadline:
                    break  # an escaped process still holds the pipes; stop listening
            for key in list(sel.get_map().values()):
                if key.data is not None:
                    key.data.close()

    def _on_messages(self, proc: subprocess.Popen[bytes], ctl: socket.socket,
                     messages: list[tuple[str, object]]) -> None:
        for kind, payload in messages:
            if kind == protocol.NEED_MAPPING:
                try:
                    apply_mapping(self.plan, proc.pid)
                except (OcibuildError, OSError) as e:
                    self.error = str(e)
                    ctl.sendall(protocol.encode(protocol.MAPPING_FAILED, None))
                else:
                    ctl.sendall(protocol.encode(protocol.MAPPED, None))
            elif kind == protocol.CREATED:
                self.created = list(payload)  # type: ignore[call-overload]
            elif kind == protocol.STEP_PGID:
                self.step_pgid = int(payload)  # type: ignore[call-overload]
            elif kind == protocol.EXITED:
                self.status = int(payload)  # type: ignore[call-overload]
            elif kind == protocol.ERROR and self.error is None:
                self.error = str(payload)

    def _result(self, helper_status: int) -> StepResult:
        if self.cancelled:
            return StepResult(exit_code=None, signal=signal.SIGKILL, cancelled=True)
        if self.error is not None:
            message = self.error
            if self.plan.single and self.conf["mapping"] == "single" and "mapped" in message:
                message += f" ({self.plan.single_mapping_hint()})"
            raise SandboxError(message)
        if self.status is None:
            raise SandboxError(f"the sandbox helper ended without a result "
                               f"(status {helper_status})")
        if os.WIFSIGNALED(self.status):
            return StepResult(exit_code=None, signal=os.WTERMSIG(self.status))
        code = os.WEXITSTATUS(self.status)
        hint = ""
        if code != 0 and self.saw_einval and self.conf["mapping"] == "single":
            hint = self.plan.single_mapping_hint()
            self.err.sink(f"ocibuild: note: {hint}\n".encode())
        return StepResult(exit_code=code, hint=hint)


def run_step(spec: StepSpec, *, on_stdout: Sink, on_stderr: Sink,
             isolation: Isolation = "userns",
             cancel: threading.Event | None = None) -> StepResult:
    """Run one step in a sandbox and return how it ended.

    Output reaches `on_stdout`/`on_stderr` a line at a time (newline included) while the
    step runs, called from this thread. Setting `cancel` kills every process of the
    step at once; the result then has `cancelled=True`. A failure to set the sandbox up
    (a missing user, a mount that cannot be made, namespaces disabled) raises
    SandboxError; the step's own failure is a StepResult with a non-zero status.

    The helper dies with the thread that started it (Linux's parent-death signal follows
    the thread), so call this from a thread that lives until it returns, as a blocking
    call naturally does.
    """
    if isolation not in ("userns", "chroot"):
        raise SandboxError(f"unknown isolation {isolation!r} (userns or chroot)")
    if isolation == "chroot" and os.geteuid() != 0:
        raise SandboxError("--isolation chroot needs root; the default user-namespace "
                           "isolation works without it")
    plan = plan_mapping()
    staging = Path(tempfile.mkdtemp(prefix="ocibuild-step-"))
    session: _Session | None = None
    try:
        (staging / "root").mkdir()
        (staging / "secrets").mkdir()
        conf = _config(spec, plan, isolation, staging)
        session = _Session(conf, plan, on_stdout, on_stderr, cancel)
        return session.run()
    finally:
        if session is not None and session.created:
            base = (spec.rootfs.upper if isinstance(spec.rootfs, OverlayRoot)
                    else Path(spec.rootfs))
            remove_created(base, session.created)
        shutil.rmtree(staging, ignore_errors=True)
