"""Run a command under a seccomp filter that refuses unshare(2) with EPERM, as Docker's
default profile does for a container without CAP_SYS_ADMIN.

Usage: python -m tests.sandbox.no_unshare [--docker-caps] COMMAND [ARGS...]

--docker-caps also limits the capability bounding set to Docker's default set (no
CAP_SYS_ADMIN: no mount), which a root command then has, as in `docker run`.
"""

from __future__ import annotations

import ctypes
import os
import sys

# (audit architecture, unshare system call number)
_ARCH = {"x86_64": (0xC000003E, 272), "aarch64": (0xC00000B7, 97)}

_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x15, 0x06
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_PR_CAPBSET_DROP = 24
DOCKER_CAPS = 0xA80425FB  # chown, dac_override, fowner, fsetid, kill, setgid, setuid,
# setpcap, net_bind_service, net_raw, sys_chroot, mknod, audit_write, setfcap
_EPERM = 1


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Insn))]


def deny_unshare() -> None:
    arch, nr = _ARCH[os.uname().machine]
    program = [
        _Insn(_BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _Insn(_BPF_JEQ_K, 0, 3, arch),
        _Insn(_BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _Insn(_BPF_JEQ_K, 0, 1, nr),
        _Insn(_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | _EPERM),
        _Insn(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
    ]
    insns = (_Insn * len(program))(*program)
    prog = _Prog(len(program), ctypes.cast(insns, ctypes.POINTER(_Insn)))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(
            _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot install the seccomp filter")


def keep_docker_caps() -> None:
    """Drop every capability outside Docker's default set from the bounding set: the
    command exec'd next (as root) has only those. (A user has none to drop.)"""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if not DOCKER_CAPS >> cap & 1 and libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"cannot drop capability {cap}")


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--docker-caps"]:
        argv = argv[1:]
        keep_docker_caps()
    deny_unshare()
    os.execvp(argv[0], argv)
