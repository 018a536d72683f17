"""The few Linux system calls the sandbox needs that the os module lacks (through ctypes).

Imported by the sandbox helper process, so it stays cheap to import: ctypes, errno and os
only.
"""

from __future__ import annotations

import ctypes
import errno
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

# statvfs f_flag bits -> mount flags; a bind remount inside a user namespace must keep
# the flags the kernel locked on the source mount, or it fails with EPERM.
_ST_TO_MS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME,
             2048: MS_NODIRATIME, 4096: MS_RELATIME}

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217,
                   "riscv64": 41}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    result = _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    _check(result, f"mount {fstype or 'bind'} on {target}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def mount_step_overlay(target: str, flags: int, lower: str, upper: str, work: str,
                       userxattr: bool) -> None:
    """Mount the writable overlay a step (RUN, or COPY through the mount) writes in.

    `volatile`: no sync of the upper directory's whole filesystem when the overlay goes
    away, nor of each file overlayfs copies up. A step's upper directory is a
    snapshot's, never remounted after its step: no build relies on it being on disk
    before the kernel writes it back (the layer made of it is an fsynced blob), and
    that sync flushed every dirty page of the store's filesystem, other steps' and
    builds' too (a cold bigctx build, its 280 MB COPY then a RUN: 3.0-3.2 s with it,
    3.4-3.9 s without). overlayfs leaves a marker in the work directory that refuses a
    second mount of it; the upper directory was unmounted cleanly in this boot when a
    step mounts it again (a COPY of several parts), so the marker is removed first.
    Kernels before 5.10 refuse the option: the overlay is mounted without it there
    (rootless overlayfs needs 5.11 anyway)."""
    _remove_volatile_marker(work)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if userxattr:
        options += ",userxattr"
    try:
        mount("overlay", target, "overlay", flags, options + ",volatile")
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        mount("overlay", target, "overlay", flags, options)


def _remove_volatile_marker(work: str) -> None:
    marker = os.path.join(work, "work", "incompat", "volatile")
    for remove, path in ((os.unlink, os.path.join(marker, "dirty")), (os.rmdir, marker)):
        try:
            remove(path)
        except FileNotFoundError:
            pass


def locked_mount_flags(path: str) -> int:
    """Mount flags of the mount that holds `path` (what a bind remount must keep)."""
    st_flags = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS.items() if st_flags & st)


def bind(source: str, target: str, *, readonly: bool, recursive: bool = True,
         nodev: bool = False) -> None:
    """Bind `source` on `target`; `readonly` and `nodev` are applied by a remount (a bind
    takes no flags of its own)."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    extra = (MS_RDONLY if readonly else 0) | (MS_NODEV if nodev else 0)
    if extra:
        flags = locked_mount_flags(target) | MS_BIND | MS_REMOUNT | extra
        mount(None, target, None, flags)


def pivot_root(new_root: str, put_old: str) -> None:
    number = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(38, f"pivot_root: unknown system call number on {os.uname().machine}")
    _check(_libc.syscall(number, _b(new_root), _b(put_old)), "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def set_parent_death_signal(signum: int) -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def become_child_subreaper() -> None:
    """Orphans among this process's descendants become its children, not init's."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


class _Rlimit(ctypes.Structure):
    _fields_ = [("soft", ctypes.c_ulong), ("hard", ctypes.c_ulong)]  # rlim_t


RLIM_INFINITY = ctypes.c_ulong(-1).value


def get_rlimit(resource: int) -> tuple[int, int]:
    """getrlimit(2) without the resource module (which the sandbox helper would import):
    (soft, hard), RLIM_INFINITY for unlimited."""
    limit = _Rlimit()
    _check(_libc.getrlimit(resource, ctypes.byref(limit)), "getrlimit")
    return limit.soft, limit.hard


def set_rlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2); RLIM_INFINITY for unlimited."""
    _check(_libc.setrlimit(resource, ctypes.byref(_Rlimit(soft, hard))), "setrlimit")


def loopback_up() -> None:
    """Bring `lo` up (a fresh network namespace starts with it down). Uses _socket and
    byte arithmetic: the socket and struct modules would cost the step ~5 ms to import."""
    import _socket
    import fcntl
    import sys

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    name = b"lo".ljust(16, b"\0")  # struct ifreq: name[16], then a short of flags
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        reply = fcntl.ioctl(sock.fileno(), siocgifflags, name + bytes(2))
        flags = int.from_bytes(reply[16:18], sys.byteorder) | iff_up
        fcntl.ioctl(sock.fileno(), siocsifflags, name + flags.to_bytes(2, sys.byteorder))
    finally:
        sock.close()


# ---- process hardening ----------------------------------------------------------------

PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
_CAPABILITY_VERSION_3 = 0x20080522


def _prctl(option: int, arg: int = 0, what: str = "prctl") -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), what)


def set_dumpable(dumpable: bool) -> None:
    """Not dumpable: no ptrace, no pidfd_getfd and no /proc/PID/{exe,fd,environ,mem,ns}
    for this process from anything short of CAP_SYS_PTRACE in the user namespace that
    owns its memory. Inherited by fork."""
    _prctl(PR_SET_DUMPABLE, int(dumpable), "prctl(PR_SET_DUMPABLE)")


def set_no_new_privs() -> None:
    _prctl(PR_SET_NO_NEW_PRIVS, 1, "prctl(PR_SET_NO_NEW_PRIVS)")


def last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


def drop_bounding_capabilities(keep: int) -> None:
    """Remove every capability not in the bit mask `keep` from the bounding set, and
    clear the ambient set."""
    for cap in range(last_capability() + 1):
        if not keep >> cap & 1:
            _prctl(PR_CAPBSET_DROP, cap, f"prctl(PR_CAPBSET_DROP, {cap})")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
           "prctl(PR_CAP_AMBIENT_CLEAR_ALL)")


def set_capabilities(effective_and_permitted: int) -> None:
    """capset(2): effective and permitted to `effective_and_permitted`, inheritable empty."""
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    for half in range(2):
        bits = effective_and_permitted >> (32 * half) & 0xFFFFFFFF
        data[3 * half] = data[3 * half + 1] = bits  # effective, permitted; inheritable 0
    _check(_libc.capset(header, data), "capset")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp_filter(program: bytes) -> None:
    """Load a classic BPF program (struct sock_filter entries) as this thread's seccomp
    filter; needs no_new_privs (or CAP_SYS_ADMIN)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0),
           "prctl(PR_SET_SECCOMP)")


def set_process_title(title: bytes) -> None:
    """Overwrite this process's command line (what /proc/PID/cmdline and ps show) and its
    name. The interpreter keeps its own copy of argv, so the original area is free."""
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2:].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start and arg_end, proc(5) 48-49
    if end > start:
        ctypes.memset(start, 0, end - start)
        ctypes.memmove(start, title, min(len(title), end - start - 1))
    name = ctypes.create_string_buffer(title[:15])
    _check(_libc.prctl(PR_SET_NAME, ctypes.addressof(name), 0, 0, 0), "prctl(PR_SET_NAME)")
