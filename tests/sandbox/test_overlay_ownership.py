"""A step on an overlay RootFS changes only `upper`; the layer written from it keeps the
ids the step gave its files."""

from __future__ import annotations

import os
import stat

from tests.sandbox.conftest import Sandboxer, stderr_text, stdout_text


def test_overlay_changes_and_ownership_in_the_layer(sbx: Sandboxer) -> None:
    lower = sbx.rootfs("lower")
    upper, work, out = sbx.path("upper"), sbx.path("work"), sbx.path("out")
    root = {"lower": [str(lower)], "upper": str(upper), "work": str(work)}
    (record,) = sbx.run({
        "rootfs": root, "layer": str(out / "layer.tar.gz"),
        "argv": ["sh", "-c", "rm /bin/ls && rm -r /home/user && echo new > /f && "
                             "chown 1000:1000 /f"]})
    assert (lower / "bin/ls").is_symlink() and (lower / "home/user").is_dir()  # untouched
    assert sorted(os.listdir(upper)) == ["bin", "f", "home"]
    for deleted in (upper / "bin/ls", upper / "home/user"):
        st = os.lstat(deleted)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # overlay whiteouts
    entries = {e["name"]: e for e in record["layer"]}
    assert "bin/.wh.ls" in entries and "home/.wh.user" in entries
    if sbx.full_ids:
        assert record["exit_code"] == 0
        assert (entries["f"]["uid"], entries["f"]["gid"]) == (1000, 1000)
    else:
        # only the caller's own id is mapped: the kernel refuses, and the output says why
        assert record["exit_code"] == 1
        assert "Invalid argument" in stderr_text(record)
        assert "/etc/subuid" in stderr_text(record) and "/etc/subuid" in record["hint"]
        assert (entries["f"]["uid"], entries["f"]["gid"]) == (0, 0)


def test_a_step_overlay_is_volatile_and_mounts_again(sbx: Sandboxer) -> None:
    """A step's overlay is mounted `volatile`: its end does not sync the store's whole
    filesystem. overlayfs then refuses a second mount of the same work directory unless
    its marker is removed; the second step here mounts the first's upper again."""
    lower = sbx.rootfs("lower")
    upper, work = sbx.path("upper"), sbx.path("work")
    root = {"lower": [str(lower)], "upper": str(upper), "work": str(work)}
    first, second = sbx.run(
        {"rootfs": root, "argv": ["sh", "-c", "grep ' / / ' /proc/self/mountinfo; "
                                              "echo one > /f"]},
        {"rootfs": root, "argv": ["cat", "/f"]})
    assert first.get("exit_code") == 0, first
    assert "fsync=volatile" in stdout_text(first)
    assert second.get("exit_code") == 0, second
    assert stdout_text(second) == "one\n"
