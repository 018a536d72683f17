"""A step's own process: forked by the fork server (zygote.py), it enters namespaces and
runs one step.

It gets the step's control socket, stdout and stderr from the fork server and reads
the marshalled configuration from the control socket. Process tree (userns mode; the
fork server already lives in the builder's user namespace):

    step process (host PID ns): unshare mount/PID/IPC/UTS[/net], watch the control socket
      └─ init, PID 1 of the new PID ns: mounts, pivot_root, reaps orphans
           └─ the step (setgroups/setgid/setuid, chdir, exec)

When the step exits, init reports its wait status and exits, and the kernel kills
everything left in the PID namespace. The builder cancels a step by shutting down its
end of the control socket (its death closes it too): the step process then exits, and
init, which has it as parent-death signal, dies with everything under it.

Imports are kept to the cheap ones: the fork server imports this module at start.
"""

from __future__ import annotations

import _signal as signal  # the signal module imports enum, which costs the helper ~7 ms
import os
import select
import sys

from ocibuild.sandbox import linux, protocol
from ocibuild.sandbox.securepath import resolve_in_root
from ocibuild.sandbox.users import UnknownUserError, resolve_user

TYPE_CHECKING = False  # not typing's: importing typing costs ~15 ms
if TYPE_CHECKING:
    from collections.abc import Callable

DEV_FILES = ("null", "zero", "full", "random", "urandom", "tty")
HOST_NET_FILES = ("/etc/hosts", "/etc/resolv.conf")


def _traceback() -> str:
    """The current exception with its frames. Not the traceback module: it is slow to
    import, and after pivot_root the standard library is out of reach."""
    error = sys.exc_info()[1]
    if error is None:
        return ""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(f"  {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}\n")
        tb = tb.tb_next
    return "".join(frames) + f"{type(error).__name__}: {error}\n"


class SetupError(Exception):
    """A failure to report to the runner as a message for people."""


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def userns_diagnosis(fallback: str = "user namespaces may be disabled or exhausted on "
                                       "this host") -> str:
    """Name the host setting that forbids unprivileged user namespaces, and the fix."""
    checks = (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone",
         "sysctl -w kernel.unprivileged_userns_clone=1"),
        ("/proc/sys/user/max_user_namespaces", "0", "user.max_user_namespaces",
         "sysctl -w user.max_user_namespaces=15000"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
         "kernel.apparmor_restrict_unprivileged_userns",
         "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile "
         "that allows 'userns' for this Python interpreter"),
    )
    for path, bad, name, fix in checks:
        if _read_text(path).strip() == bad:
            return (f"unprivileged user namespaces are disabled on this host ({name}={bad}); "
                    f"as root run `{fix}`, or run ocibuild as root with --isolation chroot")
    for line in _read_text("/proc/self/status").splitlines():
        if line.startswith("Seccomp:") and line.split()[1] != "0":
            return ("a seccomp filter forbids creating namespaces (Docker's default profile "
                    "does); run the container with --security-opt seccomp=unconfined, or run "
                    "ocibuild as root with --isolation chroot")
    return fallback


# ---- user namespace ---------------------------------------------------------------


def enter_user_namespace(mapping: str, ctl: int, uid: int, gid: int) -> None:
    """Unshare a user namespace and get mapped ("single": the caller alone, written by
    this process; otherwise the runner writes the maps while we wait)."""
    try:
        linux.unshare(linux.CLONE_NEWUSER)
    except OSError as e:
        raise SetupError(f"cannot create a user namespace ({e.strerror}): "
                         f"{userns_diagnosis()}") from e
    try:
        if mapping == "single":
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1\n")
            _write("/proc/self/gid_map", f"0 {gid} 1\n")
        else:
            protocol.send(ctl, protocol.NEED_MAPPING)
            reply = protocol.receive(ctl)
            if reply is None or reply[0] != protocol.MAPPED:
                os._exit(125)
            os.setgroups([])
    except OSError as e:
        raise SetupError(f"cannot map ids in the user namespace ({e}): "
                         f"{userns_diagnosis()}") from e


# ---- mounts ---------------------------------------------------------------------


def _mount_root(conf: dict, root: str) -> None:
    overlay = conf.get("overlay")
    if overlay:
        lower = ":".join(overlay["lower"])
        options = (f"lowerdir={lower},upperdir={overlay['upper']},"
                   f"workdir={overlay['work']},userxattr")
        if conf["isolation"] == "chroot":
            options = options.replace(",userxattr", "")
        linux.mount("overlay", root, "overlay", 0, options)
    else:
        linux.bind(conf["rootfs"], root, readonly=False)


def _mount_dev(root: str, created: list[str]) -> None:
    dev = resolve_in_root(root, "/dev", "dir", created)
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=755,size=65536k")
    for name in DEV_FILES:
        host = f"/dev/{name}"
        if os.path.exists(host):
            target = os.path.join(dev, name)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o666))
            linux.bind(host, target, readonly=False, recursive=False)
    for name in ("shm", "pts"):
        os.mkdir(os.path.join(dev, name), 0o755)
    linux.mount("shm", os.path.join(dev, "shm"), "tmpfs",
                linux.MS_NOSUID | linux.MS_NODEV, "mode=1777,size=65536k")
    try:
        linux.mount("devpts", os.path.join(dev, "pts"), "devpts",
                    linux.MS_NOSUID | linux.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
        os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    except OSError:
        pass  # some kernels refuse devpts in a user namespace; steps rarely need a pty
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, link))


def _secret_file(staging: str, index: int, spec: dict) -> str:
    path = os.path.join(staging, "secrets", str(index))
    data = spec.get("data")
    if data is None:
        fd = os.open(spec["source"], os.O_RDONLY)
        try:
            data = _read_all(fd)
        finally:
            os.close(fd)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fchown(fd, spec["uid"], spec["gid"])
        os.fchmod(fd, spec["mode"])
    finally:
        os.close(fd)
    return path


def _mount_step_mounts(conf: dict, root: str, created: list[str]) -> None:
    staging = conf["staging"]
    if any(m["type"] == "secret" for m in conf["mounts"]):
        linux.mount("tmpfs", os.path.join(staging, "secrets"), "tmpfs",
                    linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, "mode=0755")
    for index, m in enumerate(conf["mounts"]):
        kind = m["type"]
        try:
            if kind == "tmpfs":
                target = resolve_in_root(root, m["target"], "dir", created)
                size = f",size={m['size']}" if m.get("size") else ""
                linux.mount("tmpfs", target, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV,
                            f"mode={m['mode']:o}{size}")
            elif kind == "secret":
                source = _secret_file(staging, index, m)
                target = resolve_in_root(root, m["target"], "file", created)
                linux.bind(source, target, readonly=True, recursive=False)
            else:  # bind, cache, ssh: a host path
                is_dir = os.path.isdir(m["source"])
                target = resolve_in_root(root, m["target"], "dir" if is_dir else "file",
                                         created)
                linux.bind(m["source"], target, readonly=m.get("readonly", False))
        except OSError as e:
            raise SetupError(f"cannot mount {kind} at {m['target']}: {e}") from e


def _pivot(root: str) -> None:
    os.chdir(root)
    try:
        linux.pivot_root(".", ".")
        linux.umount(".", linux.MNT_DETACH)
    except OSError:
        os.chroot(".")  # e.g. the host root is an initramfs, which pivot_root refuses
    os.chdir("/")


def prepare_root(conf: dict, ctl: int) -> None:
    """In the new mount namespace: build the step's root at staging/root and enter it."""
    root = os.path.join(conf["staging"], "root")
    created: list[str] = []
    try:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        linux.sethostname(conf["hostname"])
        if conf["network"] == "none":
            linux.loopback_up()
        _mount_root(conf, root)
        proc = resolve_in_root(root, "/proc", "dir", created)
        linux.mount("proc", proc, "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        _mount_dev(root, created)
        if conf["network"] != "none":
            for host in HOST_NET_FILES:
                if os.path.isfile(host):
                    target = resolve_in_root(root, host, "file", created)
                    linux.bind(host, target, readonly=True, recursive=False)
        _mount_step_mounts(conf, root, created)
    except OSError as e:
        # Ubuntu's AppArmor restriction lets unshare succeed but takes the capabilities
        # away: the first mount is what fails
        cause = userns_diagnosis("") if conf["isolation"] == "userns" else ""
        raise SetupError(f"cannot prepare the step's root filesystem: {e}"
                         + (f" ({cause})" if cause else "")) from e
    finally:
        protocol.send(ctl, protocol.CREATED, created)
    _pivot(root)


# ---- the step ---------------------------------------------------------------------


def _step_env(conf: dict, home: str) -> dict[str, str]:
    env = dict(conf["env"])
    env.setdefault("PATH", conf["default_path"])
    env.setdefault("HOME", home)
    return env


_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)  # Python ignores them; exec keeps that


def exec_step(conf: dict, user: object, ctl: int, can_setgroups: bool) -> None:
    """In the forked step process: drop to the user and exec; never returns."""
    try:
        try:
            if can_setgroups:
                os.setgroups(user.groups)  # type: ignore[attr-defined]
            os.setresgid(user.gid, user.gid, user.gid)  # type: ignore[attr-defined]
            os.setresuid(user.uid, user.uid, user.uid)  # type: ignore[attr-defined]
        except OSError as e:
            protocol.send(ctl, protocol.ERROR,
                          f"cannot switch to user {conf['user']!r} (uid {user.uid}, gid "  # type: ignore[attr-defined]
                          f"{user.gid}): {e.strerror}; the id is not mapped in the "  # type: ignore[attr-defined]
                          "sandbox's user namespace")
            os._exit(125)
        os.chdir(conf["cwd"])
        argv = conf["argv"]
        for signum in _DEFAULT_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        env = _step_env(conf, user.home)  # type: ignore[attr-defined]
        os._exit(-_search_path(argv, env, lambda path: os.execve(path, argv, env)))
    except BaseException:
        os.write(2, _traceback().encode())
    os._exit(125)


def spawn_root_step(conf: dict, user: object, can_setgroups: bool) -> int:
    """Start a step that runs as root (init's own ids) with posix_spawn: a vfork and
    exec, ~1 ms cheaper than forking this Python process and exec'ing. Init takes the
    step's groups and working directory first (it needs neither). Returns the step's
    PID, 0 when the step must be forked (another user, or no such directory), or
    -127/-126 when no command could be started (the message is on stderr)."""
    if (user.uid, user.gid) != (0, 0) or os.getuid() != 0:  # type: ignore[attr-defined]
        return 0
    try:
        if can_setgroups:
            os.setgroups(user.groups)  # type: ignore[attr-defined]
        os.chdir(conf["cwd"])
    except OSError:
        return 0  # the forked path reports it as before
    argv = conf["argv"]
    env = _step_env(conf, user.home)  # type: ignore[attr-defined]

    def spawn(path: str) -> int:
        os.stat(path)  # a missing candidate fails here, cheaper than a failed spawn
        return os.posix_spawn(path, argv, env, setsigdef=_DEFAULT_SIGNALS)

    return _search_path(argv, env, spawn)


def _search_path(argv: list[str], env: dict[str, str], start: Callable[[str], int]) -> int:
    """execvpe's search, without os.execvpe (it imports modules lazily, and after
    pivot_root the standard library is gone): `start` each candidate path until one
    does not fail with ENOENT/ENOTDIR and return what it returns; otherwise write the
    reason to stderr and return -127 (not found) or -126 (found, not executable), as
    shells exit."""
    name = argv[0]
    dirs = [""] if "/" in name else env["PATH"].split(":")
    denied: OSError | None = None
    for directory in dirs:
        try:
            return start(os.path.join(directory, name))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            denied = denied or e
    if denied is None:
        os.write(2, f"ocibuild: {name}: command not found\n".encode())
        return -127
    os.write(2, f"ocibuild: {name}: {denied.strerror}\n".encode())
    return -126


def resolve_step_user(conf: dict) -> object:
    try:
        return resolve_user(conf["user"], _read_text("/etc/passwd"), _read_text("/etc/group"))
    except UnknownUserError as e:
        raise SetupError(str(e)) from e


def make_cwd(cwd: str) -> None:
    try:
        os.makedirs(cwd, 0o755, exist_ok=True)
    except OSError as e:
        raise SetupError(f"cannot create the working directory {cwd}: {e.strerror}") from e


def init(conf: dict, ctl: int, lifeline: int) -> None:
    """PID 1 of the step's PID namespace; never returns."""
    try:
        linux.set_parent_death_signal(signal.SIGKILL)
        if select.select([lifeline], [], [], 0)[0]:
            os._exit(125)  # the helper died before the death signal was armed
        prepare_root(conf, ctl)
        user = resolve_step_user(conf)
        make_cwd(conf["cwd"])
        can_setgroups = conf["mapping"] != "single"
        step = spawn_root_step(conf, user, can_setgroups)
        if step < 0:
            protocol.send(ctl, protocol.EXITED, -step << 8)  # a wait status: exited -step
            os._exit(0)
        if step == 0:
            step = os.fork()
            if step == 0:
                exec_step(conf, user, ctl, can_setgroups)
        while True:
            pid, status = os.wait()
            if pid == step:
                protocol.send(ctl, protocol.EXITED, status)
                os._exit(0)
    except SetupError as e:
        protocol.send(ctl, protocol.ERROR, str(e))
    except BaseException:
        protocol.send(ctl, protocol.ERROR, "sandbox init failed:\n" + _traceback())
    os._exit(125)


def _wait_unless_cancelled(ctl: int, child: int) -> int:
    """Wait for `child` and return its wait status; -1 if the builder shut its end of
    the control socket first (a cancel, or the builder died)."""
    pidfd = os.pidfd_open(child)
    try:
        while True:
            ready = select.select([ctl, pidfd], [], [])[0]
            if pidfd in ready:
                return os.waitpid(child, 0)[1]
            if not os.read(ctl, 4096):
                return -1
    finally:
        os.close(pidfd)


def run_in_namespaces(conf: dict, ctl: int, flags: int) -> None:
    linux.unshare(flags)
    lifeline_r, lifeline_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(lifeline_w)
        init(conf, ctl, lifeline_r)
    os.close(lifeline_r)
    status = _wait_unless_cancelled(ctl, child)
    # on a cancel, exiting kills init (parent-death signal), and with it the PID namespace
    os._exit(0 if status == 0 else 125)


# ---- chroot without namespaces ------------------------------------------------------


def run_plain_chroot(conf: dict, ctl: int) -> None:
    """Root where namespaces cannot be created: chroot only. Secrets are written into
    the root for the step's duration (the runner removes them); other mounts, /proc,
    /dev and network isolation are not available."""
    if conf.get("overlay"):
        raise SetupError("an overlay root needs a mount namespace, which this host forbids")
    if conf["network"] == "none":
        raise SetupError("--network=none needs a network namespace, which this host forbids")
    unsupported = [m["type"] for m in conf["mounts"] if m["type"] != "secret"]
    if unsupported:
        raise SetupError(f"{unsupported[0]} mounts need a mount namespace, which this host "
                         "forbids (chroot isolation without namespaces)")
    root = conf["rootfs"]
    created: list[str] = []
    try:
        for m in conf["mounts"]:
            target = resolve_in_root(root, m["target"], "file", created)
            if target.removeprefix(root).strip("/") not in created:
                raise SetupError(f"cannot place secret at {m['target']}: the path exists in "
                                 "the root filesystem")
            data = m.get("data")
            if data is None:
                with open(m["source"], "rb") as f:
                    data = f.read()
            fd = os.open(target, os.O_WRONLY | os.O_TRUNC)
            os.write(fd, data)
            os.fchown(fd, m["uid"], m["gid"])
            os.fchmod(fd, m["mode"])
            os.close(fd)
    finally:
        protocol.send(ctl, protocol.CREATED, created)
    os.chroot(root)
    os.chdir("/")
    user = resolve_step_user(conf)
    make_cwd(conf["cwd"])
    step = os.fork()
    if step == 0:
        os.setsid()
        linux.set_parent_death_signal(signal.SIGKILL)
        exec_step(conf, user, ctl, True)
    protocol.send(ctl, protocol.STEP_PGID, step)
    status = _wait_unless_cancelled(ctl, step)
    try:
        os.killpg(step, signal.SIGKILL)  # what the step left running in its group
    except ProcessLookupError:
        pass
    if status >= 0:
        protocol.send(ctl, protocol.EXITED, status)
    os._exit(0)


# ---- entry ------------------------------------------------------------------------


def start(conf: dict, ctl: int) -> None:
    isolation = conf["isolation"]
    flags = linux.CLONE_NEWNS | linux.CLONE_NEWPID | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS
    if conf["network"] == "none":
        flags |= linux.CLONE_NEWNET
    try:
        run_in_namespaces(conf, ctl, flags)
    except OSError as e:
        if isolation == "userns":
            raise SetupError(f"cannot create namespaces ({e.strerror}): "
                             f"{userns_diagnosis()}") from e
    run_plain_chroot(conf, ctl)


def run_step_process(ctl: int, stdout: int, stderr: int) -> None:
    """Entry of the process the fork server forks for one step; never returns."""
    try:
        linux.set_parent_death_signal(signal.SIGKILL)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.close(stdout)
        os.close(stderr)
        message = protocol.receive(ctl)
        if message is None or message[0] != protocol.CONFIG:
            os._exit(125)  # the builder gave up before sending the step
        start(message[1], ctl)  # type: ignore[arg-type]
    except SetupError as e:
        protocol.send(ctl, protocol.ERROR, str(e))
    except BaseException:
        protocol.send(ctl, protocol.ERROR, "sandbox helper failed:\n" + _traceback())
    os._exit(125)
