"""Which isolation this process can have: `--isolation auto|userns|chroot` resolved, the
reason user namespaces are refused (and its fix), and the notice `auto` prints when it
falls back to chroot.

Deciding costs a few reads of /proc on an ordinary host. A helper process probes for
real only where readings cannot settle it (a seccomp filter, or a capability bounding
set without CAP_SYS_ADMIN, as in a container), once per process: it tries what a step
needs, a user namespace in which it can mount, a /proc of its own included.

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
_AS_ROOT = (", or use --isolation chroot (or auto, the default), which runs RUN steps as "
            "real root without a user namespace")
_AS_ROOT_IN_CONTAINER = (", or run ocibuild as root in the container, where --isolation auto "
                         "(the default) falls back to chroot")

# Where the probe's attempt failed: creating the namespace, mapping ids in it, making a
# mount in it, mounting a /proc of its own.
UNSHARE, MAP, MOUNT, PROC = "unshare", "map", "mount", "proc"


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


def _has_cap(status: dict[str, str], field: str, cap: int) -> bool:
    try:
        return bool(int(status.get(field, "0"), 16) >> cap & 1)
    except ValueError:
        return False


def in_initial_user_namespace() -> bool:
    """Whether this process is in the host's user namespace (root in a rootless
    container is not: overlayfs there needs userxattr, as in the sandbox's own)."""
    return _read("/proc/self/uid_map").split() == ["0", "0", "4294967295"]


def _privileged(status: dict[str, str]) -> bool:
    """CAP_SYS_ADMIN in the host's user namespace: what the host's restrictions on
    unprivileged user namespaces leave alone. (In a user namespace a process may hold
    every capability and still be unprivileged to the host.)"""
    return _has_cap(status, "CapEff", _CAP_SYS_ADMIN) and in_initial_user_namespace()


def _apparmor_label() -> str:
    """This process's AppArmor profile ("unconfined"), or "" without AppArmor."""
    label = _read("/proc/self/attr/apparmor/current")
    if not label and _read("/sys/module/apparmor/parameters/enabled") == "Y":
        label = _read("/proc/self/attr/current")  # kernels without LSM stacking
    return label


def _proc_masked() -> bool:
    """Parts of /proc hidden by mounts over them, as container runtimes do (/proc/kcore,
    /proc/keys, ...); the kernel then lets no user namespace mount a /proc of its own."""
    for line in _read("/proc/self/mountinfo").splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].startswith("/proc/") \
                and not fields[4].startswith("/proc/sys/fs/binfmt_misc"):
            return True
    return False


def _causes(status: dict[str, str], failed_at: str | None = None) -> list[tuple[str, str]]:
    """(cause, fix) for each setting here that refuses this process a user namespace it
    can use, most likely first; `failed_at` (UNSHARE, MAP, MOUNT, PROC) narrows them to
    those that fail there."""
    found = []
    user_alternative = "" if os.geteuid() == 0 else _AS_ROOT_IN_CONTAINER
    creating = failed_at in (None, UNSHARE, MAP)
    if creating and _read(_MAX_USERNS) == "0":
        found.append(("user namespaces are disabled on this host (user.max_user_namespaces=0 "
                      f"in {_MAX_USERNS})",
                      "as root run `sysctl -w user.max_user_namespaces=15000`"))
    privileged = _privileged(status)
    if creating and not privileged and _read(_USERNS_CLONE) == "0":
        found.append(("unprivileged user namespaces are disabled on this host "
                      "(kernel.unprivileged_userns_clone=0, Debian's switch)",
                      "as root run `sysctl -w kernel.unprivileged_userns_clone=1`"))
    label = _apparmor_label() if failed_at in (None, MOUNT) or _read(_APPARMOR) == "1" else ""
    if failed_at != PROC and not privileged and _read(_APPARMOR) == "1" \
            and label in ("", "unconfined"):  # a profile allowing 'userns' lifts it
        found.append(("AppArmor restricts unprivileged user namespaces "
                      "(kernel.apparmor_restrict_unprivileged_userns=1, Ubuntu 24.04's "
                      "default)",
                      "as root run `sysctl -w kernel.apparmor_restrict_unprivileged_userns"
                      "=0`, or load an AppArmor profile that allows 'userns' for this "
                      "Python interpreter"))
    if creating and status.get("Seccomp", "0") not in ("", "0"):
        found.append(("a seccomp filter refuses to create namespaces (Seccomp: "
                      f"{status['Seccomp']} in /proc/self/status, as Docker's default "
                      "profile does)",
                      "run the container with `--security-opt seccomp=unconfined` (or a "
                      "profile that allows unshare and clone with namespace flags) and "
                      "`--security-opt systempaths=unconfined` (steps mount their own "
                      "/proc; on AppArmor hosts also `--security-opt apparmor=unconfined`)"
                      + user_alternative))
    if failed_at in (None, MOUNT) and label not in ("", "unconfined"):
        found.append((f"the AppArmor profile {label.split()[0]} forbids mounts",
                      "run the container with `--security-opt apparmor=unconfined`"
                      + user_alternative))
    if failed_at in (None, PROC) and _proc_masked():
        found.append(("parts of /proc are masked, as container runtimes do by default, so "
                      "a user namespace cannot mount a /proc of its own",
                      "run the container with `--security-opt systempaths=unconfined` "
                      "(Kubernetes: procMount: Unmasked)" + user_alternative))
    return found


def diagnosis(fallback: str = "user namespaces may be disabled or exhausted on this host "
                              "(see user.max_user_namespaces)",
              failed_at: str | None = None) -> str:
    """Why this process cannot have a usable user namespace, and the fix, as one phrase
    for people ("cause; fix"); `fallback` when no setting explains it."""
    causes = _causes(_status(), failed_at)
    if not causes:
        return fallback
    cause, fix = causes[0]
    if os.geteuid() == 0 and in_initial_user_namespace():
        fix += _AS_ROOT
    return f"{cause}; {fix}"


class Probe:
    """What this process may create: a user namespace in which it can mount (then
    `userns_error` is None; otherwise it is the error, "" where a setting refuses it
    and nothing was tried, and `failed_at` where it came),
    and (asked only as root) mount, PID and network namespaces without one
    (`namespaces`)."""

    def __init__(self, userns_error: str | None, failed_at: str | None,
                 namespaces: bool) -> None:
        self.userns_error, self.failed_at = userns_error, failed_at
        self.namespaces = namespaces


_probe: Probe | None = None


def _settled_without_helper(status: dict[str, str]) -> Probe | None:
    """The answer where readings give it: the common case, with no helper process."""
    if status.get("Seccomp", "0") not in ("", "0"):
        return None  # only trying tells what the filter allows
    if not _has_cap(status, "CapBnd", _CAP_SYS_ADMIN):
        return None  # a container: AppArmor, masked /proc, ... decide; try
    privileged = _privileged(status)
    if os.geteuid() == 0 and not privileged:
        return None  # root in a user namespace of a container: try
    if _causes(status, UNSHARE):
        return Probe("", UNSHARE, privileged)  # refused by a setting: nothing tried
    return Probe(None, None, privileged)


def probe() -> Probe:
    """What this process can create (see Probe), settled once per process."""
    global _probe
    if _probe is None:
        _probe = _settled_without_helper(_status()) or _probe_in_helper()
    return _probe


def _probe_in_helper() -> Probe:
    import subprocess

    from ocibuild.sandbox.helper_process import helper_command

    done = subprocess.run(helper_command("ocibuild.sandbox.availability"), env={},
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    lines = done.stdout.decode(errors="replace").splitlines()
    if done.returncode != 0 or len(lines) != 2 or not lines[1].startswith("userns "):
        tail = done.stderr.decode(errors="replace").strip()[-500:]
        return Probe(f"the namespace probe failed (status {done.returncode}): {tail}", None,
                     False)
    namespaces = lines[0] == "namespaces yes"
    userns = lines[1].removeprefix("userns ")
    if userns == "ok":
        return Probe(None, None, namespaces)
    failed_at, _, error = userns.partition(" ")
    return Probe(error, failed_at, namespaces)


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


def _mount_as_a_step_does(report: int) -> None:
    """(In the probe helper, PID 1 of new namespaces.) Make the root private and mount a
    /proc of its own; write "STAGE ERROR" to `report` where that fails."""
    from ocibuild.sandbox import linux

    failure = ""
    try:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    except OSError as e:
        failure = f"{MOUNT} {e.strerror}"
    else:
        try:
            linux.mount("proc", "/proc", "proc",
                        linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        except OSError as e:
            failure = f"{PROC} {e.strerror}"
    os.write(report, failure.encode())
    os._exit(0)


def _try_userns() -> str | None:
    """(In the probe helper; changes this process.) Create a user namespace mapping this
    user alone and mount in it as a step does: None, or "STAGE ERROR"."""
    from ocibuild.sandbox import linux

    uid, gid = os.geteuid(), os.getegid()
    try:
        linux.unshare(linux.CLONE_NEWUSER)
    except OSError as e:
        return f"{UNSHARE} {e.strerror}"
    try:
        for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map",
                           f"0 {uid} 1"), ("/proc/self/gid_map", f"0 {gid} 1")):
            with open(path, "w") as f:
                f.write(text)
    except OSError as e:
        return f"{MAP} {e}"
    try:
        linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWPID)
    except OSError as e:
        return f"{UNSHARE} {e.strerror}"
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        _mount_as_a_step_does(report_w)
    os.close(report_w)
    failure = os.read(report_r, 4096).decode(errors="replace")
    os.waitpid(pid, 0)
    return failure or None


def main() -> None:
    """The probe helper: prints "namespaces yes|no", then "userns ok|STAGE ERROR".
    (Plain lines: importing json would double the probe's time.)"""
    namespaces = _try_namespaces() if os.geteuid() == 0 else False
    print(f"namespaces {'yes' if namespaces else 'no'}")
    print(f"userns {_try_userns() or 'ok'}")


def refused_message(found: Probe) -> str:
    """The error for a build that needs user namespaces where they are refused."""
    what = ("create a user namespace" if found.failed_at in (None, UNSHARE, MAP)
            else "mount in a user namespace")
    error = f" ({found.userns_error})" if found.userns_error else ""
    text = f"cannot {what}{error}: {diagnosis(failed_at=found.failed_at)}"
    if os.geteuid() == 0 and not text.endswith(_AS_ROOT):
        text += _AS_ROOT
    return text


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
        raise SandboxError(refused_message(found))
    return Choice("chroot", not found.namespaces, _notice(found))


def _notice(found: Probe) -> str:
    causes = _causes(_status(), found.failed_at)
    cause = causes[0][0] if causes else f"user namespaces are refused here ({found.userns_error})"
    if found.namespaces:
        return (f"notice: {cause}: --isolation auto runs RUN steps in chroot isolation, "
                "as real root without a user namespace (they keep their own mount, PID and "
                f"network namespaces; see {README_SECTION})")
    return (f"notice: {cause}: --isolation auto runs RUN steps in a bare chroot as real "
            "root, without user, mount, PID or network namespaces (no cache, bind or tmpfs "
            f"mounts, no --network=none; see {README_SECTION})")


if __name__ == "__main__":
    main()
