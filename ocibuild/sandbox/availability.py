"""Which isolation this process can have: `--isolation auto|userns|chroot` resolved, the
reason user namespaces are refused (and its fix), and the notice `auto` prints when it
falls back to chroot.

Deciding costs a few reads of /proc on an ordinary host. A helper process probes for
real only where a reading cannot settle it (a seccomp filter, or root without
CAP_SYS_ADMIN, as in a container), once per process.

The sandbox helper imports this module for its messages: only `os` at import time.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: importing typing costs the helper ~15 ms
if TYPE_CHECKING:
    from ocibuild.sandbox.spec import Isolation

ISOLATIONS = ("auto", "userns", "chroot")
README_SECTION = 'README, "Sandbox isolation"'
_CAP_SYS_ADMIN = 21

_MAX_USERNS = "/proc/sys/user/max_user_namespaces"
_USERNS_CLONE = "/proc/sys/kernel/unprivileged_userns_clone"
_APPARMOR = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _status() -> dict[str, str]:
    fields = {}
    for line in _read("/proc/self/status").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def in_initial_user_namespace() -> bool:
    """Whether this process is in the host's user namespace (root in a rootless
    container is not: overlayfs there needs userxattr, as in the sandbox's own)."""
    return _read("/proc/self/uid_map").split() == ["0", "0", "4294967295"]


def _privileged(status: dict[str, str]) -> bool:
    """CAP_SYS_ADMIN in the host's user namespace: what the host's restrictions on
    unprivileged user namespaces leave alone. (In a user namespace a process may hold
    every capability and still be unprivileged to the host.)"""
    try:
        sys_admin = int(status.get("CapEff", "0"), 16) >> _CAP_SYS_ADMIN & 1
    except ValueError:
        return False
    return bool(sys_admin) and in_initial_user_namespace()


def _apparmor_confines_us() -> bool:
    """Ubuntu's restriction applies to unconfined processes; a profile that allows
    'userns' (as podman's do) lifts it."""
    return _read("/proc/self/attr/current") in ("", "unconfined")


def _causes(status: dict[str, str]) -> list[tuple[str, str]]:
    """(cause, fix) for each setting here that refuses user namespaces to this process,
    most likely first."""
    found = []
    if _read(_MAX_USERNS) == "0":
        found.append(("user namespaces are disabled on this host (user.max_user_namespaces=0 "
                      f"in {_MAX_USERNS})",
                      "as root run `sysctl -w user.max_user_namespaces=15000`"))
    if not _privileged(status):  # these two leave a privileged process alone
        if _read(_USERNS_CLONE) == "0":
            found.append(("unprivileged user namespaces are disabled on this host "
                          "(kernel.unprivileged_userns_clone=0, Debian's switch)",
                          "as root run `sysctl -w kernel.unprivileged_userns_clone=1`"))
        if _read(_APPARMOR) == "1" and _apparmor_confines_us():
            found.append(("AppArmor restricts unprivileged user namespaces "
                          "(kernel.apparmor_restrict_unprivileged_userns=1, Ubuntu 24.04's "
                          "default)",
                          "as root run `sysctl -w kernel.apparmor_restrict_unprivileged_userns"
                          "=0`, or load an AppArmor profile that allows 'userns' for this "
                          "Python interpreter"))
    if status.get("Seccomp", "0") not in ("", "0"):
        found.append(("a seccomp filter refuses to create namespaces (Seccomp: "
                      f"{status['Seccomp']} in /proc/self/status, as Docker's default "
                      "profile does)",
                      "run the container with `--security-opt seccomp=unconfined` or a "
                      "profile that allows unshare and clone with namespace flags"
                      + ("" if os.geteuid() == 0 else ", or run ocibuild as root in the "
                         "container, where --isolation auto (the default) falls back to "
                         "chroot")))
    return found


def diagnosis(fallback: str = "user namespaces may be disabled or exhausted on this host "
                              "(see user.max_user_namespaces)") -> str:
    """Why this process cannot have user namespaces, and the fix, as one phrase for
    people ("cause; fix"); `fallback` when no setting explains it."""
    causes = _causes(_status())
    if not causes:
        return fallback
    cause, fix = causes[0]
    return f"{cause}; {fix}"


def refused_message(error: str) -> str:
    """The error for a build that needs user namespaces where they are refused."""
    text = f"cannot create a user namespace ({error}): {diagnosis()}"
    if os.geteuid() == 0:
        text += (", or use --isolation auto (the default) or chroot, which run RUN steps "
                 "as real root without a user namespace")
    return text


class Probe:
    """What this process may create: `userns` (a user namespace in which it can mount,
    None) or why not (the error, e.g. "Operation not permitted"); `namespaces` whether
    it can make mount, PID and network namespaces without one (only asked as root)."""

    def __init__(self, userns_error: str | None, namespaces: bool) -> None:
        self.userns_error, self.namespaces = userns_error, namespaces


_probe: Probe | None = None


def _settled_without_helper(status: dict[str, str]) -> Probe | None:
    """The answer where readings give it: the common case, with no helper process."""
    if status.get("Seccomp", "0") not in ("", "0"):
        return None  # only trying tells what the filter allows
    privileged = _privileged(status)
    if os.geteuid() == 0 and not privileged:
        return None  # root in a container: its capabilities decide, try
    refused = [cause for cause, _ in _causes(status)]
    return Probe("Operation not permitted" if refused else None, privileged)


def probe() -> Probe:
    """What this process can create (see Probe), settled once per process."""
    global _probe
    if _probe is None:
        _probe = _settled_without_helper(_status()) or _probe_in_helper()
    return _probe


def _probe_in_helper() -> Probe:
    import subprocess

    from ocibuild.sandbox.zygote_client import helper_command

    done = subprocess.run(helper_command("ocibuild.sandbox.availability"), env={},
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    lines = done.stdout.decode(errors="replace").splitlines()
    if done.returncode != 0 or len(lines) != 2 or not lines[1].startswith("userns "):
        tail = done.stderr.decode(errors="replace").strip()[-500:]
        return Probe(f"the namespace probe failed (status {done.returncode}): {tail}", False)
    userns = lines[1].removeprefix("userns ")
    return Probe(None if userns == "ok" else userns, lines[0] == "namespaces yes")


def _try_namespaces() -> bool:
    """(In the probe helper.) Can a child of this process unshare mount, PID, IPC, UTS and
    network namespaces without a user namespace?"""
    from ocibuild.sandbox import linux

    pid = os.fork()
    if pid == 0:
        try:
            linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWPID | linux.CLONE_NEWIPC
                          | linux.CLONE_NEWUTS | linux.CLONE_NEWNET)
        except OSError:
            os._exit(1)
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _try_userns() -> str | None:
    """(In the probe helper; changes this process.) Create a user namespace mapping this
    user alone and make a mount in it: None, or the error of the step that failed."""
    from ocibuild.sandbox import linux

    uid, gid = os.geteuid(), os.getegid()
    try:
        linux.unshare(linux.CLONE_NEWUSER)
        for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map",
                           f"0 {uid} 1"), ("/proc/self/gid_map", f"0 {gid} 1")):
            with open(path, "w") as f:
                f.write(text)
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    except OSError as e:
        return e.strerror or str(e)
    return None


def main() -> None:
    """The probe helper: prints "namespaces yes|no", then "userns ok|ERROR". (Plain
    lines: importing json would double the probe's time.)"""
    namespaces = _try_namespaces() if os.geteuid() == 0 else False
    print(f"namespaces {'yes' if namespaces else 'no'}")
    print(f"userns {_try_userns() or 'ok'}")


class Choice:
    """The isolation a build uses: `isolation` for run_step, `bare` when even chroot
    has no namespaces (no mounts: the native snapshotter), and the one-line `notice`
    saying what an automatic fallback gives up (None when nothing was given up)."""

    def __init__(self, isolation: Isolation, bare: bool, notice: str | None) -> None:
        self.isolation, self.bare, self.notice = isolation, bare, notice


def choose(requested: str) -> Choice:
    """Resolve `--isolation`: "auto" is user namespaces where they work, else (as root)
    chroot with a notice; "userns" never falls back; "chroot" needs root. Raises
    UsageError for an unknown mode and SandboxError when the mode cannot be had."""
    from ocibuild.errors import UsageError
    from ocibuild.sandbox.errors import SandboxError

    if requested not in ISOLATIONS:
        raise UsageError(f"unknown isolation {requested!r} (use {', '.join(ISOLATIONS)})")
    root = os.geteuid() == 0
    if requested == "chroot":
        if not root:
            raise SandboxError("--isolation chroot needs root; the default user-namespace "
                               "isolation works without it")
        return Choice("chroot", not probe().namespaces, None)
    found = probe()
    if found.userns_error is None:
        return Choice("userns", False, None)
    if requested == "userns" or not root:
        raise SandboxError(refused_message(found.userns_error))
    return Choice("chroot", not found.namespaces, _notice(found.namespaces))


def _notice(namespaces: bool) -> str:
    causes = _causes(_status())
    cause = causes[0][0] if causes else "user namespaces are refused here"
    if namespaces:
        return (f"notice: {cause}: --isolation auto runs RUN steps in chroot isolation, "
                "as real root without a user namespace (they keep their own mount, PID and "
                f"network namespaces; see {README_SECTION})")
    return (f"notice: {cause}: --isolation auto runs RUN steps in a bare chroot as real "
            "root, without user, mount, PID or network namespaces (no cache, bind or tmpfs "
            f"mounts, no --network=none; see {README_SECTION})")


if __name__ == "__main__":
    main()
