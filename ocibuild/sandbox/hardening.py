"""What a sandboxed step may do, as runc's defaults under Docker: the default capability
set, no_new_privs, the seccomp filter, and /proc entries masked or made read-only.

`RUN --security=insecure` (allowed by the security.insecure entitlement) skips all of
it: the step keeps every capability of its user namespace (or of the machine, in chroot
isolation) and runs without a filter.
"""

from __future__ import annotations

import os

from ocibuild.sandbox import linux, seccomp

# CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
# SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP: Docker's default set
DEFAULT_CAPABILITIES = sum(1 << cap for cap in (0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29,
                                                31))

# runc's masked and read-only paths under Docker's defaults (those below /proc; a step
# gets no /sys)
MASKED_PROC = ("asound", "acpi", "kcore", "keys", "latency_stats", "timer_list",
               "timer_stats", "sched_debug", "scsi")
READONLY_PROC = ("bus", "fs", "irq", "sys", "sysrq-trigger")

_FILTER = seccomp.program()  # made once in the fork server, shared by every step


def restrict_proc(proc: str) -> None:
    """Mask and write-protect the kernel interfaces under the step's /proc (a host path:
    the step's proc mount, before pivot_root)."""
    for name in MASKED_PROC:
        path = os.path.join(proc, name)
        if os.path.isdir(path):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY | linux.MS_NOSUID
                        | linux.MS_NODEV | linux.MS_NOEXEC, "size=0")
        elif os.path.exists(path):
            linux.bind("/dev/null", path, readonly=False, recursive=False)
    for name in READONLY_PROC:
        path = os.path.join(proc, name)
        if os.path.exists(path):
            linux.bind(path, path, readonly=True)


def drop_privileges_before_user_switch() -> None:
    """First half, while the process still holds CAP_SETPCAP: shrink the bounding set
    (what any later exec can ever have) to the default set."""
    linux.drop_bounding_capabilities(DEFAULT_CAPABILITIES)


def confine_before_exec(uid: int) -> None:
    """Second half, after the switch to the step's user: a root step keeps exactly the
    default set (a non-root one lost all by switching), then no_new_privs and the
    seccomp filter."""
    if uid == 0:
        linux.set_capabilities(DEFAULT_CAPABILITIES)
    linux.set_no_new_privs()
    if _FILTER is not None:
        linux.install_seccomp_filter(_FILTER)
