"""The seccomp filter every sandboxed step runs under, modelled on Docker's default.

Docker's default profile allows a list of system calls and refuses the rest. Written
the other way round, it refuses the calls below (kernel modules, keyrings, mounts and
new namespaces, clocks, swap, reboot, BPF, perf, io_uring, handle-based opens,
userfaultfd and the obsolete ones) and new namespaces through clone(); clone3() answers
ENOSYS, as in Docker, so that libc falls back to clone(), whose flags a classic BPF
program can read. Everything else is allowed. Calls of another architecture than the
interpreter's (32-bit calls on x86-64, the x32 ABI) are refused: their numbers differ.

The program is classic BPF, made here as bytes (no libseccomp needed); nsinit loads it
with linux.install_seccomp_filter just before the step's exec.
"""

from __future__ import annotations

import os
import sys

# name: (x86_64, aarch64); None where the architecture has no such call
_REFUSED = {
    "acct": (163, 89), "add_key": (248, 217), "bpf": (321, 280),
    "clock_adjtime": (305, 266), "clock_settime": (227, 112), "settimeofday": (164, 170),
    "create_module": (174, None), "delete_module": (176, 106), "finit_module": (313, 273),
    "init_module": (175, 105), "get_kernel_syms": (177, None), "query_module": (178, None),
    "ioperm": (173, None), "iopl": (172, None), "kcmp": (312, 272),
    "kexec_file_load": (320, 294), "kexec_load": (246, 104), "keyctl": (250, 219),
    "request_key": (249, 218), "lookup_dcookie": (212, 18), "mount": (165, 40),
    "umount2": (166, 39), "mount_setattr": (442, 442), "move_mount": (429, 429),
    "open_tree": (428, 428), "fsopen": (430, 430), "fsconfig": (431, 431),
    "fsmount": (432, 432), "fspick": (433, 433), "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265), "nfsservctl": (180, 42), "perf_event_open": (298, 241),
    "pivot_root": (155, 41), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "quotactl": (179, 60), "quotactl_fd": (443, 443), "reboot": (169, 142),
    "setns": (308, 268), "swapon": (167, 224), "swapoff": (168, 225), "sysfs": (139, None),
    "_sysctl": (156, None), "unshare": (272, 97), "uselib": (134, None),
    "userfaultfd": (323, 282), "ustat": (136, None), "vhangup": (153, 58),
    "syslog": (103, 116), "afs_syscall": (183, None), "tuxcall": (184, None),
    "security": (185, None), "vserver": (236, None), "getpmsg": (181, None),
    "putpmsg": (182, None), "io_uring_setup": (425, 425), "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427), "fanotify_init": (300, 262),
}
_CLONE = (56, 220)
_CLONE3 = (435, 435)
_ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}  # column, AUDIT_ARCH_*
_X32_BIT = 0x40000000

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000

_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_EPERM, _ENOSYS = 1, 38
_OFFSET_NR, _OFFSET_ARCH, _OFFSET_ARG0 = 0, 4, 16


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    order = sys.byteorder
    return (code.to_bytes(2, order) + bytes((jt, jf)) + k.to_bytes(4, order))


def refused_calls(machine: str) -> dict[str, int]:
    """The refused system calls by name and number on `machine` (uname -m)."""
    column = _ARCHES[machine][0]
    return {name: nrs[column] for name, nrs in _REFUSED.items() if nrs[column] is not None}


def program(machine: str | None = None) -> bytes | None:
    """The filter for `machine` (default: this one) as struct sock_filter entries, or
    None on an architecture this module has no system call table for."""
    machine = machine or os.uname().machine
    if machine not in _ARCHES:
        return None
    column, audit_arch = _ARCHES[machine]
    refused = sorted(refused_calls(machine).values())
    # Layout: arch check, x32 check, one jeq per refused call, clone, clone3, allow,
    # then the clone flag check and the two refusals. Jumps are counted forward from
    # the next instruction.
    head = [(_LD_W_ABS, _OFFSET_ARCH), ("jeq_arch", audit_arch), ("ret", _ERRNO | _EPERM),
            (_LD_W_ABS, _OFFSET_NR)]
    if machine == "x86_64":
        head.append(("jge_deny", _X32_BIT))
    body = [("jeq_deny", nr) for nr in refused]
    body += [("jeq_clone", _CLONE[column]), ("jeq_enosys", _CLONE3[column]), ("ret", _ALLOW)]
    tail = [(_LD_W_ABS, _OFFSET_ARG0), ("jset_deny", CLONE_NAMESPACE_FLAGS),
            ("ret", _ALLOW), ("ret", _ERRNO | _EPERM), ("ret", _ERRNO | _ENOSYS)]
    code = head + body + tail
    clone_check = len(head) + len(body)
    deny, enosys = len(code) - 2, len(code) - 1
    out = []
    for index, (op, k) in enumerate(code):
        def to(target: int, index: int = index) -> int:
            return target - index - 1
        if op == "ret":
            out.append(_insn(_RET, k))
        elif op == "jeq_arch":
            out.append(_insn(_JEQ, k, 1, 0))  # skip the refusal that follows
        elif op == "jge_deny":
            out.append(_insn(_JGE, k, to(deny), 0))
        elif op == "jeq_deny":
            out.append(_insn(_JEQ, k, to(deny), 0))
        elif op == "jeq_clone":
            out.append(_insn(_JEQ, k, to(clone_check), 0))
        elif op == "jeq_enosys":
            out.append(_insn(_JEQ, k, to(enosys), 0))
        elif op == "jset_deny":
            out.append(_insn(_JSET, k, to(deny), 0))
        else:
            out.append(_insn(op, k))  # type: ignore[arg-type]
    return b"".join(out)
