"""A default step runs confined as Docker runs containers: the default capability set,
no_new_privs and a seccomp filter; what that forbids fails in the step, what image
builds need (chown, switching users) still works. RUN --security=insecure keeps the
namespace's full capability set and no filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import attack
from tests.sandbox.conftest import Sandboxer, stderr_text, stdout_text

# Docker's default capability set, by capability number (linux/capability.h)
DEFAULT_CAPS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
    "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "SYS_CHROOT": 18,
    "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31,
}
DEFAULT_MASK = sum(1 << bit for bit in DEFAULT_CAPS.values())
SECCOMP_FILTER = "2"  # /proc/PID/status "Seccomp:": 0 none, 1 strict, 2 filter


def test_default_capability_mask_is_dockers() -> None:
    assert f"{DEFAULT_MASK:016x}" == "00000000a80425fb"


def full_mask() -> int:
    """Every capability the running kernel knows: what root of a new user namespace has."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return (1 << (last + 1)) - 1


def status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


@pytest.fixture(scope="session")
def helpers() -> dict[str, Path]:
    return attack.helpers()


def status_step(rootfs: Path, **extra: Any) -> dict[str, Any]:
    return {"rootfs": str(rootfs), "argv": ["cat", "/proc/self/status"], **extra}


def test_default_step_is_confined(sbx: Sandboxer) -> None:
    rootfs = sbx.rootfs()
    steps = [status_step(rootfs)]
    if sbx.full_ids:
        steps.append(status_step(rootfs, user="user"))
    records = sbx.run(*steps)
    for record in records:
        assert record["exit_code"] == 0, record
    root = status_fields(stdout_text(records[0]))
    assert int(root["CapEff"], 16) == DEFAULT_MASK, root
    assert int(root["CapPrm"], 16) == DEFAULT_MASK, root
    assert int(root["CapBnd"], 16) == DEFAULT_MASK, root
    assert int(root["CapAmb"], 16) == 0 and int(root["CapInh"], 16) == 0, root
    assert root["NoNewPrivs"] == "1" and root["Seccomp"] == SECCOMP_FILTER, root
    if sbx.full_ids:
        user = status_fields(stdout_text(records[1]))
        assert int(user["CapEff"], 16) == 0 and int(user["CapPrm"], 16) == 0, user
        assert int(user["CapBnd"], 16) == DEFAULT_MASK, user
        assert user["NoNewPrivs"] == "1" and user["Seccomp"] == SECCOMP_FILTER, user


FORBIDDEN = """
mkdir -p /mnt
mount -t tmpfs none /mnt 2>/dev/null && echo mount=ok || echo mount=refused
unshare -U true 2>/dev/null && echo unshare-user=ok || echo unshare-user=refused
echo x 2>/dev/null >/proc/sys/kernel/hostname && echo proc-sys=ok || echo proc-sys=refused
echo kcore-bytes=$(head -c 16 /proc/kcore 2>/dev/null | wc -c)
/keys
/peek | grep '^ptrace_'
"""


def test_what_a_default_step_cannot_do(sbx: Sandboxer, helpers: dict[str, Path]) -> None:
    rootfs = sbx.rootfs()
    for name in ("keys", "peek"):
        attack.install(helpers[name], rootfs, sbx.user)
    (record,) = sbx.run({"rootfs": str(rootfs), "argv": ["sh", "-c", FORBIDDEN]})
    text = stdout_text(record)
    results = dict(word.split("=", 1) for word in text.split() if "=" in word)
    expected = {"mount": "refused", "unshare-user": "refused", "proc-sys": "refused",
                "kcore-bytes": "0", "add_key": "-1", "keyctl_join": "-1",
                "ptrace_seize": "-1", "ptrace_attach": "-1"}
    assert {key: results.get(key) for key in expected} == expected, text


def test_what_a_default_step_still_can_do(sbx: Sandboxer) -> None:
    rootfs = sbx.rootfs()
    script = ("echo > /file && chown 1000:1000 /file && stat -c %u:%g /file && "
              "su -s /bin/sh -c 'id -u; id -g' user")
    (record,) = sbx.run({"rootfs": str(rootfs), "argv": ["sh", "-c", script]})
    if not sbx.full_ids:
        # only uid 0 is mapped: the kernel refuses the unmapped id, not the sandbox
        assert record["exit_code"] != 0 and "Invalid argument" in stderr_text(record), record
        return
    assert record["exit_code"] == 0, record
    assert stdout_text(record).split() == ["1000:1000", "1000", "1000"], record


def test_insecure_step_keeps_the_namespace_capabilities(sbx: Sandboxer) -> None:
    rootfs = sbx.rootfs()
    (record,) = sbx.run(status_step(rootfs, security="insecure"))
    assert record["exit_code"] == 0, record
    fields = status_fields(stdout_text(record))
    assert int(fields["CapEff"], 16) == full_mask(), fields
    assert int(fields["CapEff"], 16) != DEFAULT_MASK
    assert fields["Seccomp"] == "0", fields
