"""A step's own process: forked by the fork server (zygote.py), it enters namespaces and
runs one step.

It gets the step's control socket, stdout and stderr from the fork server and reads
the step's configuration from the control socket. Process tree (userns mode; the fork
server already lives in the builder's user namespace):

    supervisor (host PID ns): watch the control socket, connect the network, relay
      ├─ slirp4netns: the user-mode network of the default mode (usernet.py)
      └─ PID namespace parent (default network only): unshare PID
           └─ init, PID 1 of the new PID ns: mount, network, IPC and UTS ns,
                │                            mounts, pivot_root, reaps orphans
                └─ the step (capabilities, no_new_privs, seccomp, user, exec)

The PID namespace parent exists so that the supervisor's later child, slirp4netns,
stays in the host's PID namespace (unsharing it puts the caller's children, not the
caller, in the new one). A step without the user-mode network has no such child: its
supervisor unshares the PID namespace itself and forks init (a process fewer, ~2 ms of
every such step).

The control socket talks to the builder, so nothing in the step's PID namespace keeps
it: init reports its set-up (the mount points it created, or an error) and closes it
before the step is forked. From then on init holds only the write end of a status
pipe to the supervisor, which parses what comes through it (a wait status, or an
error from the step's last moments before exec) and relays it. The supervisor has no
PID in the step's namespace, so nothing there can name it; init is not dumpable and
its memory belongs to the host's user namespace (it was never exec'd in the new one),
so no process of the step can ptrace it, take its descriptors with pidfd_getfd or
read /proc/1/exe, and its command line is blanked.

When the step exits, init reports its wait status and exits, and the kernel kills
everything left in the PID namespace. The builder cancels a step by shutting down its
end of the control socket (its death closes it too): the supervisor then exits, and
init, which has it as parent-death signal, dies with everything under it.

Imports are kept to the cheap ones: the fork server imports this module at start.
"""

from __future__ import annotations

import _signal as signal  # the signal module imports enum, which costs the helper ~7 ms
import os
import select
import sys

from ocibuild.sandbox import hardening, linux, protocol, usernet
from ocibuild.sandbox.availability import diagnosis as userns_diagnosis
from ocibuild.sandbox.availability import in_initial_user_namespace
from ocibuild.sandbox.securepath import resolve_in_root
from ocibuild.sandbox.users import UnknownUserError, resolve_user

TYPE_CHECKING = False  # not typing's: importing typing costs ~15 ms
if TYPE_CHECKING:
    from collections.abc import Callable

DEV_FILES = ("null", "zero", "full", "random", "urandom", "tty")
HOST_NET_FILES = ("/etc/hosts", "/etc/resolv.conf")
DEFAULT_SHM_SIZE = 64 << 20  # Docker's and BuildKit's
# /etc/hosts of a step without the host's network that is given extra hosts (BuildKit's)
LOOPBACK_HOSTS = "127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


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
            reply = protocol.receive_from_builder(ctl)
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
        # Paths relative to their common parent: overlayfs shows its options as given in
        # the step's mountinfo, which must not tell where the store is.
        dirs = [*overlay["lower"], overlay["upper"], overlay["work"]]
        base = os.path.commonpath(dirs)
        lower, upper, work = (":".join(os.path.relpath(d, base) for d in overlay["lower"]),
                              os.path.relpath(overlay["upper"], base),
                              os.path.relpath(overlay["work"], base))
        userxattr = conf["isolation"] != "chroot" or not in_initial_user_namespace()
        os.chdir(base)
        try:
            linux.mount_step_overlay(root, linux.MS_NODEV, lower, upper, work, userxattr)
        finally:
            os.chdir("/")
    else:
        # nodev: a device node from a hostile layer (extracted as such when root builds)
        # must not open a host device; there is no device cgroup to stop it
        linux.bind(conf["rootfs"], root, readonly=False, nodev=True)


def _mount_dev(conf: dict, root: str, created: list[str]) -> None:
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
    shm_size = conf["shm_size"] or DEFAULT_SHM_SIZE
    linux.mount("shm", os.path.join(dev, "shm"), "tmpfs",
                linux.MS_NOSUID | linux.MS_NODEV, f"mode=1777,size={shm_size}")
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
                linux.bind(m["source"], target, readonly=m.get("readonly", False),
                           nodev=True)
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


def _private_files(conf: dict) -> str | None:
    """A tmpfs of this mount namespace at staging/secrets for the files the step gets
    that must not be on disk (secrets, the generated resolv.conf and hosts); None if
    none."""
    if (conf["network"] != "default" and not conf["extra_hosts"]
            and all(m["type"] != "secret" for m in conf["mounts"])):
        return None
    path = os.path.join(conf["staging"], "secrets")
    linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                "mode=0755")
    return path


def _write_private(private: str, name: str, data: bytes) -> str:
    path = os.path.join(private, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


def _hosts_with_extra(conf: dict, private: str) -> str:
    """/etc/hosts for a step given extra hosts: the host's (without the host's network,
    or on a host without one, loopback names only), then one line per extra host, as
    Docker appends them."""
    base = "" if conf["network"] == "none" else _read_text("/etc/hosts")
    if not base.strip():
        base = LOOPBACK_HOSTS.format(hostname=conf["hostname"])
    elif not base.endswith("\n"):
        base += "\n"
    extra = "".join(f"{ip}\t{host}\n" for host, ip in conf["extra_hosts"])
    return _write_private(private, "hosts", (base + extra).encode())


def _network_files(conf: dict, root: str, private: str | None, created: list[str]) -> None:
    """/etc/hosts and /etc/resolv.conf: the host's, read-only; with the user-mode
    network, a resolv.conf naming its DNS forwarder. With extra hosts, a hosts file
    that adds them, also with --network=none (which otherwise keeps the root's own)."""
    for host in HOST_NET_FILES:
        source = host
        if host == "/etc/hosts" and conf["extra_hosts"] and private is not None:
            source = _hosts_with_extra(conf, private)
        elif conf["network"] == "none":
            continue
        elif host == "/etc/resolv.conf" and private is not None and conf["network"] == "default":
            source = _write_private(private, "resolv.conf", usernet.resolv_conf(
                forwarder=usernet.forwarder_usable()))
        elif not os.path.isfile(host):
            continue
        target = resolve_in_root(root, host, "file", created)
        linux.bind(source, target, readonly=True, recursive=False)


def prepare_root(conf: dict, ctl: int) -> None:
    """In the new mount namespace: build the step's root at staging/root and enter it."""
    root = os.path.join(conf["staging"], "root")
    created: list[str] = []
    try:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        linux.sethostname(conf["hostname"])
        private = _private_files(conf)
        _mount_root(conf, root)
        proc = resolve_in_root(root, "/proc", "dir", created)
        linux.mount("proc", proc, "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        if conf["security"] != "insecure":
            hardening.restrict_proc(proc)
        _mount_dev(conf, root, created)
        _network_files(conf, root, private, created)
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


def _set_limits(conf: dict, report: int) -> None:
    """The step's --ulimit values (name, number, soft, hard; -1: unlimited). Limits are
    not namespaced: raising a hard limit above the one ocibuild runs with needs
    CAP_SYS_RESOURCE outside any user namespace (only root in chroot isolation can
    have it)."""
    for name, resource, soft, hard in conf["ulimits"]:
        soft_value = linux.RLIM_INFINITY if soft == -1 else soft
        hard_value = linux.RLIM_INFINITY if hard == -1 else hard
        try:
            linux.set_rlimit(resource, soft_value, hard_value)
        except OSError as e:
            message = f"--ulimit {name}={soft}:{hard}: cannot set it ({os.strerror(e.errno)})"
            current = linux.get_rlimit(resource)[1]
            if hard_value > current:
                message += (f"; the hard limit ocibuild runs with is {current}, and raising "
                            "it takes CAP_SYS_RESOURCE outside any user namespace (root in "
                            "chroot isolation): ask for no more, or raise it for the user "
                            "running ocibuild (ulimit -H, limits.conf)")
            protocol.send(report, protocol.ERROR, message)
            os._exit(125)


def exec_step(conf: dict, user: object, report: int, can_setgroups: bool) -> None:
    """In the forked step process: set its limits, confine, drop to the user and exec;
    never returns. A failure before exec goes to `report` as an ERROR message."""
    try:
        _set_limits(conf, report)
        confined = conf["security"] != "insecure"
        try:
            if confined:
                hardening.drop_privileges_before_user_switch()
            if can_setgroups:
                os.setgroups(user.groups)  # type: ignore[attr-defined]
            os.setresgid(user.gid, user.gid, user.gid)  # type: ignore[attr-defined]
            os.setresuid(user.uid, user.uid, user.uid)  # type: ignore[attr-defined]
        except OSError as e:
            protocol.send(report, protocol.ERROR,
                          f"cannot switch to user {conf['user']!r} (uid {user.uid}, gid "  # type: ignore[attr-defined]
                          f"{user.gid}): {e.strerror}; the id is not mapped in the "  # type: ignore[attr-defined]
                          "sandbox's user namespace")
            os._exit(125)
        os.chdir(conf["cwd"])
        argv = conf["argv"]
        for signum in _DEFAULT_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        env = _step_env(conf, user.home)  # type: ignore[attr-defined]
        if confined:
            hardening.confine_before_exec(user.uid)  # type: ignore[attr-defined]
        os.closerange(3, _MAX_FD)  # nothing of the sandbox's reaches the step
        os._exit(-_search_path(argv, env, lambda path: os.execve(path, argv, env)))
    except BaseException:
        os.write(2, _traceback().encode())
    os._exit(125)


_MAX_FD = 1 << 20


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


def _enter_mount_and_network(conf: dict, net_ready: int) -> None:
    """A mount namespace of the step's own (made here, not by the supervisor, so that
    init's pivot_root does not move the supervisor's root, nor that of the network
    helper it starts), and a network namespace unless the step shares the host's. For
    the user-mode network, tell the supervisor it exists (it connects it from
    outside)."""
    others = linux.CLONE_NEWNS | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS
    if conf["network"] == "host":
        linux.unshare(others)
        return
    linux.unshare(others | linux.CLONE_NEWNET)
    if conf["network"] == "none":
        linux.loopback_up()
    else:
        os.write(net_ready, b"1")


def _await_network(conf: dict, net_go: int) -> None:
    if conf["network"] == "default" and os.read(net_go, 1) != b"1":
        os._exit(125)  # the supervisor could not connect it and reports why


def init(conf: dict, ctl: int, lifeline: int, status: int, net: tuple[int, int]) -> None:
    """PID 1 of the step's PID namespace; never returns. Reports set-up on `ctl`, which
    it closes before the step exists, then the step's end on `status`. `net` is the
    pair of pipe ends (ready: init -> supervisor, go: supervisor -> init) with which
    the user-mode network is connected while init prepares the root."""
    report = ctl
    try:
        linux.set_parent_death_signal(signal.SIGKILL)
        if select.select([lifeline], [], [], 0)[0]:
            os._exit(125)  # the supervisor died before the death signal was armed
        if conf["network"] == "default":
            linux.set_dumpable(True)  # until connected: the supervisor opens our netns
        _enter_mount_and_network(conf, net[0])
        prepare_root(conf, ctl)
        user = resolve_step_user(conf)
        make_cwd(conf["cwd"])
        _await_network(conf, net[1])
        # Alone in its PID namespace until now; from here on the step shares it. (The
        # supervisor needed to open init's /proc/PID/ns/net: not dumpable forbids it.)
        linux.set_dumpable(False)
        linux.set_process_title(b"ocibuild-init")
        os.close(ctl)
        report = status
        step = os.fork()
        if step == 0:
            exec_step(conf, user, status, conf["mapping"] != "single")
        while True:
            pid, wait_status = os.wait()
            if pid == step:
                protocol.send(status, protocol.EXITED, wait_status)
                os._exit(0)
    except SetupError as e:
        protocol.send(report, protocol.ERROR, str(e))
    except BaseException:
        protocol.send(report, protocol.ERROR, "sandbox init failed:\n" + _traceback())
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


_MAX_STATUS_BYTES = 64 * 1024


def relay_status(status_r: int, ctl: int) -> bool:
    """Pass what init (or the step before its exec) wrote on the status pipe to the
    builder, checked: one EXITED with a wait status, or one ERROR; anything else is
    dropped (the builder then reports that the sandbox ended without a result).
    Whether a message was passed."""
    data = b""
    while len(data) < _MAX_STATUS_BYTES and (chunk := os.read(status_r, 65536)):
        data += chunk
    try:
        messages = protocol.Decoder().feed(data[:_MAX_STATUS_BYTES])
    except protocol.ProtocolError:
        return False
    for kind, payload in messages[:1]:
        if kind == protocol.EXITED:
            try:
                protocol.send(ctl, kind, protocol.parse_int(payload, protocol.MAX_STATUS))
            except protocol.ProtocolError:
                return False
            return True
        if kind == protocol.ERROR:
            protocol.send(ctl, kind, protocol.parse_text(payload)[:_MAX_STATUS_BYTES])
            return True
    return False


def _connect_network(init_pid: int, ready: int, go: int) -> tuple[object, str | None]:
    """Once init has its network namespace, start the user-mode network helper for it
    and let init go on. Returns the helper (kept until the step ends) or why it
    failed."""
    try:
        if os.read(ready, 1) != b"1":
            return None, None  # init ended before; it reports why
        net = usernet.start(init_pid)
    except OSError as e:
        return None, str(e)
    finally:
        os.close(ready)
    try:
        os.write(go, b"1")
    except OSError:
        pass  # init ended meanwhile; it reports why
    return net, None


def _pid_namespace_parent(conf: dict, ctl: int, pipes: dict[str, int]) -> None:
    """In a child of the supervisor: unshare the PID namespace and fork init, its PID 1;
    tell the supervisor init's PID (or that the kernel refused the namespace), wait for
    init, exit. Never returns. A child of the supervisor does this, not the supervisor,
    whose later child (the network helper) must stay in the host's PID namespace."""
    linux.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != pipes["supervisor"]:
        os._exit(125)  # the supervisor died before the death signal was armed
    try:
        linux.unshare(linux.CLONE_NEWPID)
    except OSError as e:
        os.write(pipes["pid_w"], f"refused {e.errno}".encode())
        os._exit(0)
    lifeline_r, lifeline_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(lifeline_w)
        os.close(pipes["pid_w"])
        init(conf, ctl, lifeline_r, pipes["status_w"], (pipes["ready_w"], pipes["go_r"]))
    os.close(ctl)
    os.write(pipes["pid_w"], f"pid {child}".encode())
    os.waitpid(child, 0)
    os._exit(0)


def run_in_namespaces(conf: dict, ctl: int) -> None:
    """Supervise one step: a child unshares the namespaces and forks init; this
    process connects the user-mode network, waits, relays the end. Never returns."""
    if conf["network"] != "default":
        _supervise_init(conf, ctl)
    status_r, status_w = os.pipe()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid_r, pid_w = os.pipe()
    pipes = {"supervisor": os.getpid(), "status_w": status_w, "ready_w": ready_w,
             "go_r": go_r, "pid_w": pid_w}
    parent = os.fork()
    if parent == 0:
        for end in (status_r, ready_r, go_w, pid_r):
            os.close(end)
        _pid_namespace_parent(conf, ctl, pipes)
    for end in (status_w, ready_w, go_r, pid_w):
        os.close(end)
    said = os.read(pid_r, 64).decode(errors="replace").split()
    os.close(pid_r)
    if said[:1] == ["refused"]:
        os.waitpid(parent, 0)
        _namespaces_refused(conf, ctl, int(said[1]))
    net, net_error = None, None
    if conf["network"] == "default" and said[:1] == ["pid"]:
        net, net_error = _connect_network(int(said[1]), ready_r, go_w)
    else:
        os.close(ready_r)
    os.close(go_w)
    status = _wait_unless_cancelled(ctl, parent)
    # on a cancel, exiting kills the PID namespace's parent and so init (parent-death
    # signals), and with init the whole PID namespace
    if status >= 0:
        if net_error is not None:
            protocol.send(ctl, protocol.ERROR, net_error)
        else:
            relay_status(status_r, ctl)
    os._exit(0)  # the network helper leaves with its lifeline


def _supervise_init(conf: dict, ctl: int) -> None:
    """Supervise one step without the user-mode network: unshare the PID namespace here
    and fork init, wait, relay the end. Never returns."""
    try:
        linux.unshare(linux.CLONE_NEWPID)
    except OSError as e:
        _namespaces_refused(conf, ctl, e.errno)
    status_r, status_w = os.pipe()
    lifeline_r, lifeline_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(status_r)
        os.close(lifeline_w)
        init(conf, ctl, lifeline_r, status_w, (-1, -1))
    os.close(status_w)
    os.close(lifeline_r)
    status = _wait_unless_cancelled(ctl, child)
    # on a cancel, exiting kills init (its parent-death signal), and with it the whole
    # PID namespace
    if status >= 0:
        relay_status(status_r, ctl)
    os._exit(0)


def _namespaces_refused(conf: dict, ctl: int, errno: int) -> None:
    if conf["isolation"] == "userns":
        raise SetupError(f"cannot create namespaces ({os.strerror(errno)}): "
                         f"{userns_diagnosis()}")
    run_plain_chroot(conf, ctl)


# ---- chroot without namespaces ------------------------------------------------------


def run_plain_chroot(conf: dict, ctl: int) -> None:
    """Root where namespaces cannot be created: chroot only. Secrets are written into
    the root for the step's duration (the runner removes them); other mounts, /proc,
    /dev (so --shm-size), the generated /etc/hosts (so --add-host) and network
    isolation are not available. Limits (--ulimit) are."""
    if conf.get("overlay"):
        raise SetupError("an overlay root needs a mount namespace, which this host forbids")
    if conf["network"] == "none":
        raise SetupError("--network=none needs a network namespace, which this host forbids")
    for flag, given in (("--add-host", conf["extra_hosts"]), ("--shm-size", conf["shm_size"])):
        if given:
            raise SetupError(f"{flag} needs a mount namespace, which this host forbids "
                             "(chroot isolation without namespaces)")
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
    # the step's failure before exec (e.g. a limit it cannot have) comes through a pipe
    # that its exec closes: the builder must get it instead of the exit status
    error_r, error_w = os.pipe()
    step = os.fork()
    if step == 0:
        os.close(error_r)
        os.setsid()
        linux.set_parent_death_signal(signal.SIGKILL)
        exec_step(conf, user, error_w, True)
    os.close(error_w)
    protocol.send(ctl, protocol.STEP_PGID, step)
    status = _wait_unless_cancelled(ctl, step)
    try:
        os.killpg(step, signal.SIGKILL)  # what the step left running in its group
    except ProcessLookupError:
        pass
    if status >= 0 and not relay_status(error_r, ctl):
        protocol.send(ctl, protocol.EXITED, status)
    os._exit(0)


# ---- entry ------------------------------------------------------------------------


def start(conf: dict, ctl: int) -> None:
    run_in_namespaces(conf, ctl)


def run_step_process(ctl: int, stdout: int, stderr: int) -> None:
    """Entry of the process the fork server forks for one step; never returns."""
    try:
        linux.set_parent_death_signal(signal.SIGKILL)
        linux.set_dumpable(False)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.close(stdout)
        os.close(stderr)
        message = protocol.receive_from_builder(ctl)
        if message is None or message[0] != protocol.CONFIG:
            os._exit(125)  # the builder gave up before sending the step
        start(message[1], ctl)  # type: ignore[arg-type]
    except SetupError as e:
        protocol.send(ctl, protocol.ERROR, str(e))
    except BaseException:
        protocol.send(ctl, protocol.ERROR, "sandbox helper failed:\n" + _traceback())
    os._exit(125)
