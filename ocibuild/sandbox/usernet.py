"""User-mode networking for a step's own network namespace, through slirp4netns.

slirp4netns puts a tap interface into a network namespace (eth0, 10.0.2.100/24, default
route via 10.0.2.2, MTU 65520, loopback up) and carries its traffic out through
ordinary sockets of its own, in the network namespace it was started in, with the
credentials of the user who started it: no privilege on the host is needed beyond a
usable /dev/net/tun. The host's loopback addresses are not reachable from the
namespace (--disable-host-loopback: the gateway 10.0.2.2 no longer maps to the host's
127.0.0.1). DNS queries to 10.0.2.3:53 are forwarded to the first IPv4 nameserver of
the host's /etc/resolv.conf, loopback resolvers (systemd-resolved) included; other
ports of 10.0.2.3 lead nowhere. Addresses of the host other than loopback are reached
like any other address, as with BuildKit's and podman's rootless networking. IPv4 only.

The helper always runs --enable-sandbox and --enable-seccomp, as podman runs it: it
parses packets the step writes. The sandbox gives it a mount namespace and root of its
own, holding only the host's /etc and /run, before it reports ready. That also keeps
it out of reach of the step's pivot_root: a helper sharing the step's mount namespace
would have its root moved into the step's root filesystem, and would then forward DNS
to whatever nameserver the step writes into its /etc/resolv.conf, 127.0.0.1 included.
Where the host's /etc/resolv.conf leads outside /etc and /run (WSL's /mnt/wsl), the
sandboxed forwarder cannot read it: the step's resolv.conf then names the host's own
nameservers, reached through the helper like any address (loopback ones are left out).

Measured here (start() until the route is up, median): ~2.7 ms without the two
hardening options, ~3.5 ms with them. pasta (passt 2023-03-09) was measured too:
~18 ms, with no readiness or exit descriptor (it daemonizes, and a stray one keeps the
namespace alive); it quits at start when SIGPIPE is ignored, as in every Python
process; and by default it copies the host's address into the namespace, hiding that
host address from the step, and forwards ports both ways, host loopback included.

Usage contract (see start()): the caller is single-threaded, root in the user
namespace that owns the step's network namespace (the builder's), in the host's
network namespace, sees the host's /proc, /dev/net/tun, /etc/resolv.conf and the
helper binary, and knows the host-side PID of a process inside the step's new network
namespace. The helper exits when the returned object's close() is called, or when the
last copy of its lifeline descriptor closes: when the caller and every child it forked
without exec'ing have exited.

Imported by the sandbox helper process, so it stays cheap to import: os, select and
_signal only.
"""

from __future__ import annotations

import _signal as signal  # the signal module imports enum (~7 ms)
import os
import select

HELPER = "slirp4netns"
PACKAGE = "slirp4netns"  # the Debian package that ships it
INTERFACE = "eth0"
ADDRESS = "10.0.2.100"
GATEWAY = "10.0.2.2"
NAMESERVER = "10.0.2.3"
MISSING_WARNING = (f"warning: {HELPER} is not installed, so RUN steps share the host's "
                   f"network; install the {PACKAGE} package to give each its own")

# all always on: the host's loopback must stay out of reach (see the docstring)
_OPTIONS = ("--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
            "--enable-seccomp")
_SANDBOX_DIRS = ("/etc/", "/run/")  # what --enable-sandbox keeps of the host
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_TUN = "/dev/net/tun"
_RESOLV_CONF = "/etc/resolv.conf"
_KEPT_RESOLV_WORDS = (b"search", b"domain", b"options")
_ERROR_TAIL = 2000  # characters of the helper's stderr quoted in an error

# errno values (not worth the errno module's import)
_ENOENT, _EIO, _EACCES, _EINVAL, _ETIMEDOUT = 2, 5, 13, 22, 110
_F_DUPFD_CLOEXEC = 1030


def find_helper(path: str | None = None) -> str | None:
    """The slirp4netns executable on `path` (default: $PATH), or None."""
    if path is None:
        path = os.environ.get("PATH") or _DEFAULT_PATH
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", HELPER)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def unavailable_reason() -> str | None:
    """Why a default RUN cannot have its own network here (one line for people, naming
    the fix), or None when it can."""
    if find_helper() is None:
        return MISSING_WARNING
    if not os.access(_TUN, os.R_OK | os.W_OK):
        return (f"warning: {_TUN} is not usable by this user, so RUN steps share the "
                f"host's network; as root run `chmod 0666 {_TUN}` (Debian's default mode) "
                "to give each its own")
    return None


class UserNet:
    """A running helper. `resolv_conf` is what the step's /etc/resolv.conf should hold.
    `lifeline` keeps it running: a child forked from the caller that should not keep
    the helper alive once the caller is gone closes it (os.close, not close())."""

    def __init__(self, pid: int, lifeline: int, resolv_conf: bytes) -> None:
        self.pid = pid
        self.lifeline = lifeline  # the write end of the helper's --exit-fd pipe
        self.resolv_conf = resolv_conf

    def close(self, timeout: float = 0.0) -> None:
        """Stop the helper: the namespace loses its way out. The helper takes ~30 ms to
        exit (the kernel removes its tap device meanwhile). With timeout 0 this returns
        at once and reaps the helper only if it is already gone; otherwise whoever reaps
        the caller's orphans does, once the caller exits: the fork server, a subreaper,
        for a step's (a caller that lives on should give a timeout). With a timeout it
        waits that long, kills the helper if it is still there, and reaps it."""
        if self.lifeline < 0:
            return
        os.close(self.lifeline)
        self.lifeline = -1
        if timeout > 0:
            _stop(self.pid, timeout)
            return
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass  # reaped already (SIGCHLD ignored)


def resolv_conf(host_path: str = _RESOLV_CONF, forwarder: bool = True) -> bytes:
    """The step's resolv.conf: the host's search domains and options, and the helper's
    DNS forwarder, or (`forwarder` false) the host's nameservers that the namespace
    can reach (IPv4, not loopback)."""
    servers = [f"nameserver {NAMESERVER}".encode()] if forwarder else []
    kept = []
    try:
        fd = os.open(host_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            text = os.read(fd, 65536)
        finally:
            os.close(fd)
    except OSError:
        text = b""
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in _KEPT_RESOLV_WORDS:
            kept.append(line.strip())
        elif (not forwarder and len(words) > 1 and words[0] == b"nameserver"
              and b":" not in words[1] and not words[1].startswith(b"127.")):
            servers.append(b"nameserver " + words[1])
    return b"".join(line + b"\n" for line in servers + kept)


def forwarder_usable(host_path: str = _RESOLV_CONF) -> bool:
    """Whether the sandboxed helper can read the host's resolv.conf."""
    return os.path.realpath(host_path).startswith(_SANDBOX_DIRS)


def start(netns_pid: int, *, helper: str | None = None, timeout: float = 5.0) -> UserNet:
    """Start slirp4netns for the network namespace of `netns_pid` (a host-side PID) and
    wait until the namespace has its interface and default route.

    The caller: single-threaded, root in the user namespace that owns that network
    namespace (it needs CAP_SYS_ADMIN and CAP_NET_ADMIN there, which the helper
    inherits), itself in the host's network namespace (where the helper's sockets are
    made), seeing the host's /proc, /dev/net/tun, /etc/resolv.conf and the helper. Its
    mount namespace may be the step's, where init pivots into the step's root later:
    the helper has a mount namespace of its own before this returns. The target
    namespace must be a new one (it gets eth0; it is refused if it is the caller's).
    The helper gets only /dev/null as stdin and stdout, a private buffer as stderr, the
    namespace and its lifeline, default SIGPIPE/SIGXFSZ and an empty environment. It
    exits when close() is called or every copy of `lifeline` (close-on-exec, held by
    the caller) is closed. Raises OSError with a message for people on failure
    (ENOENT: no helper; EACCES: /dev/net/tun unusable; ETIMEDOUT; EIO otherwise)."""
    if helper is None:
        helper = find_helper()
        if helper is None:
            raise OSError(_ENOENT, f"{HELPER} is not installed (install the {PACKAGE} "
                                   "package, or use --network=host or --network=none)")
    opened: list[int] = []
    try:
        try:
            netns = _high(os.open(f"/proc/{netns_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC),
                          opened)
        except OSError as e:
            raise OSError(e.errno, "cannot open the network namespace of process "
                                   f"{netns_pid}: {e.strerror}") from e
        if os.fstat(netns).st_ino == os.stat("/proc/self/ns/net").st_ino:
            raise OSError(_EINVAL, f"process {netns_pid} is in the caller's network "
                                   "namespace, not a new one")
        ready_r, ready_w = (_high(fd, opened) for fd in os.pipe())
        exit_r, exit_w = (_high(fd, opened) for fd in os.pipe())
        devnull = _high(os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC), opened)
        errors = _high(_error_buffer(), opened)
        passed = (netns, ready_w, exit_r)
        forwarder = forwarder_usable()
        argv = [helper, *_OPTIONS, *(() if forwarder else ("--disable-dns",)),
                f"--ready-fd={ready_w}", f"--exit-fd={exit_r}",
                "--netns-type=path", f"/proc/self/fd/{netns}", INTERFACE]
        actions = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds(passed)]
        actions += [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, errors, 2)]
        for fd in passed:
            os.set_inheritable(fd, True)  # nothing forks in between: single-threaded
        try:
            pid = os.posix_spawn(helper, argv, {}, file_actions=actions,
                                 setsigdef=(signal.SIGPIPE, signal.SIGXFSZ), setsigmask=())
        except OSError as e:
            raise OSError(e.errno, f"cannot start {helper}: {e.strerror}") from e
        finally:
            for fd in passed:
                os.set_inheritable(fd, False)
        for fd in (*passed, devnull):
            os.close(fd)
            opened.remove(fd)
        try:
            ready = _wait_ready(ready_r, timeout)
        except BaseException:
            _stop(pid, 0)
            raise
        if ready is not None:
            _stop(pid, 0)
            raise OSError(*_failure(ready, errors, helper))
        opened.remove(exit_w)
        return UserNet(pid, exit_w, resolv_conf(forwarder=forwarder))
    finally:
        for fd in opened:
            os.close(fd)


# ---- helpers ----------------------------------------------------------------------


def _high(fd: int, opened: list[int]) -> int:
    """`fd`, moved above 2 if it is a standard descriptor (the caller had one closed):
    the spawn's dup2 onto 0-2 must not clobber it. Records it in `opened`."""
    if fd < 3:
        import fcntl  # only on this unusual path

        moved = fcntl.fcntl(fd, _F_DUPFD_CLOEXEC, 3)
        os.close(fd)
        fd = moved
    opened.append(fd)
    return fd


def _error_buffer() -> int:
    """Where the helper's stderr goes: a memfd, read only when it fails to start, so a
    chatty helper never blocks on a full pipe nor dies of SIGPIPE when nobody reads."""
    try:
        return os.memfd_create("slirp4netns-stderr", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)


def _inheritable_fds(keep: tuple[int, ...]) -> list[int]:
    """The caller's descriptors above 2 that would leak into the helper."""
    leaking = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                if os.get_inheritable(fd):
                    leaking.append(fd)
            except OSError:
                pass  # the directory listing's own descriptor, closed by now
    return leaking


def _wait_ready(ready_r: int, timeout: float) -> str | None:
    """None once the helper reports the namespace configured; otherwise why not."""
    if not select.select([ready_r], [], [], timeout)[0]:
        return f"not ready after {timeout:g} s"
    if os.read(ready_r, 1) == b"1":
        return None
    return "exited during set-up"


def _failure(reason: str, errors: int, helper: str) -> tuple[int, str]:
    os.lseek(errors, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(errors, 65536):
        chunks.append(chunk)
    text = b"".join(chunks).decode(errors="replace").strip()[-_ERROR_TAIL:]
    message = f"cannot start user-mode networking: {helper} {reason}"
    if text:
        message += f": {text}"
    code = _ETIMEDOUT if reason.startswith("not ready") else _EIO
    if not os.access(_TUN, os.R_OK | os.W_OK):
        code = _EACCES
        message += (f"\n{_TUN} is not readable and writable by this user (Debian's default "
                    f"mode is 0666): as root run `chmod 0666 {_TUN}`, or use "
                    "--network=host or --network=none")
    return code, message


def _stop(pid: int, timeout: float) -> None:
    """Wait up to `timeout` for the helper to exit, kill it if it has not, reap it."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # already reaped (SIGCHLD ignored)
    try:
        if timeout <= 0 or not select.select([pidfd], [], [], timeout)[0]:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    finally:
        os.close(pidfd)
