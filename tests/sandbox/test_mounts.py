from __future__ import annotations

import os
from pathlib import Path

from tests.sandbox.conftest import Sandboxer, stderr_text, stdout_text


def test_secret_is_readable_inside_and_gone_afterwards(sbx: Sandboxer) -> None:
    rootfs = sbx.rootfs()
    secret = {"type": "secret", "target": "/run/secrets/x", "data": "hunter2"}
    as_user = {**secret, "uid": 1000, "gid": 1000, "mode": 0o400}
    steps = [{"rootfs": str(rootfs), "mounts": [secret],
              "argv": ["sh", "-c", "cat /run/secrets/x; echo; stat -c '%a %u' /run/secrets/x;"
                                   "echo changed > /run/secrets/x"]}]
    if sbx.full_ids:
        steps.append({"rootfs": str(rootfs), "mounts": [as_user], "user": "user",
                      "argv": ["cat", "/run/secrets/x"]})
    records = sbx.run(*steps)
    lines = stdout_text(records[0]).splitlines()
    assert lines == ["hunter2", "400 0"]
    assert "Read-only file system" in stderr_text(records[0])
    if sbx.full_ids:
        assert stdout_text(records[1]) == "hunter2"
    assert os.listdir(rootfs / "run") == []  # neither the file nor /run/secrets remain
    for path in rootfs.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
            assert b"hunter2" not in path.read_bytes(), path


def test_bind_tmpfs_and_cache_mounts(sbx: Sandboxer) -> None:
    rootfs = sbx.rootfs()
    data = sbx.path("data")
    (data / "in.txt").write_text("from host\n")
    cache = sbx.tmp / "cache"  # made by the sandbox for the user
    script = """
        cat /src/in.txt
        echo no > /src/new-ro || echo ro-refused
        echo yes > /rw/new-rw && echo rw-ok
        echo t > /scratch/t && grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs-ok
        echo $(( $(cat /cache/n 2>/dev/null || echo 0) + 1 )) > /cache/n; cat /cache/n
        cmp -s /etc/resolv.conf /host-resolv && echo resolv-is-host
    """
    mounts = [{"type": "bind", "source": str(data), "target": "/src"},
              {"type": "bind", "source": str(data), "target": "/rw", "readonly": False},
              {"type": "tmpfs", "target": "/scratch"},
              {"type": "cache", "source": str(cache), "target": "/cache"},
              {"type": "bind", "source": "/etc/resolv.conf", "target": "/host-resolv"}]
    # the host's resolv.conf is what a host-network step sees (the default network's
    # names its DNS forwarder: tests/build/test_step_network.py)
    step = {"rootfs": str(rootfs), "argv": ["sh", "-c", script], "mounts": mounts,
            "network": "host"}
    first, second = sbx.run(step, step)
    assert stdout_text(first).splitlines() == [
        "from host", "ro-refused", "rw-ok", "tmpfs-ok", "1", "resolv-is-host"]
    assert stdout_text(second).splitlines()[4] == "2"  # the cache persists
    assert (data / "new-rw").read_text() == "yes\n" and not (data / "new-ro").exists()
    for made in ("src", "rw", "scratch", "cache", "host-resolv"):
        assert not (rootfs / made).exists()  # mount points are removed afterwards
    assert Path(cache / "n").read_text() == "2\n"
