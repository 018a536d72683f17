"""ADD of a hostile local archive never reaches outside the step's root: the builder's
own files (which the unprivileged build may write) stay as they were."""

from __future__ import annotations

import bz2
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest

from tests.build.conftest import Builder, give_to, write_context
from tests.support.users import User


def _tar(path: Path, members: list[tuple[str, str, str | bytes]],
         compress: str = "") -> None:
    """members: (name, kind "file" | "symlink" | "hardlink", content or link target)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "file":
                data = value if isinstance(value, bytes) else value.encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = str(value)
            tf.addfile(info)
    data = raw.getvalue()
    if compress == "bz2":
        data = bz2.compress(data)
    elif compress == "xz":
        data = lzma.compress(data)
    path.write_bytes(data)


@pytest.fixture
def victim(builder: Builder) -> Path:
    """A file of the builder user's, outside every build root."""
    path = builder.tmp / "victim.txt"
    path.write_text("the user's own file\n")
    give_to(path, builder.user)
    os.chmod(path, 0o600)
    return path


def _unchanged(victim: Path) -> None:
    st = victim.stat()
    assert victim.read_text() == "the user's own file\n"
    assert st.st_mode & 0o777 == 0o600 and st.st_nlink == 1


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_a_symlink_then_a_file_of_the_same_name_replaces_the_link(
        builder: Builder, victim: Path, snapshotter: str) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\nADD evil.tar /x/\n"
        "RUN test ! -L /x/x && cat /x/x\n")}, builder.user)
    _tar(ctx / "evil.tar", [("x", "symlink", str(victim)),
                            ("x", "file", "written by the archive\n")])
    give_to(ctx, builder.user)
    proc, _ = builder.build(ctx, "--snapshotter", snapshotter)
    assert "written by the archive" in proc.stderr
    _unchanged(victim)


@pytest.mark.parametrize("members, refusal", [
    ([("d", "symlink", "../../../../.."), ("d/victim.txt", "file", "through the link\n")],
     "archive member 'd/victim.txt': symlink 'd' points outside the root"),
    ([("../victim.txt", "file", "up and out\n")],
     "archive member '../victim.txt': '..' would leave the root"),
    ([("stolen", "hardlink", "VICTIM")],
     "archive member 'stolen': hard link target 'VICTIM' does not exist"),
    ([("ok", "file", "fine\n"), ("../../stolen", "hardlink", "ok")],
     "archive member '../../stolen': '..' would leave the root"),
])
def test_an_archive_reaching_outside_is_refused_by_name(
        builder: Builder, victim: Path, members: list[tuple[str, str, str]],
        refusal: str) -> None:
    def place(text: str) -> str:
        return text.replace("VICTIM_DIR", str(victim.parent)).replace("VICTIM", str(victim))

    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\nADD evil.tar /x/\n"}, builder.user)
    _tar(ctx / "evil.tar", [(n, k, place(v)) for n, k, v in members])
    give_to(ctx, builder.user)
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.rstrip().splitlines()[-1]
    assert last.startswith("ocibuild: error: ") and "evil.tar: " in last, proc.stderr
    assert place(refusal) in last, proc.stderr
    assert "Traceback" not in proc.stderr
    _unchanged(victim)


@pytest.mark.parametrize("compress", ["", "bz2", "xz"])
def test_archives_unpack_as_docker_does(builder: Builder, compress: str) -> None:
    """Absolute names land under the destination; `.wh.` names are ordinary files (an
    archive is not a layer); hard links stay links; bzip2 and xz unpack as gzip does."""
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\nADD a.tar /x/\n"
        "RUN cat /x/etc/abs /x/.wh.keep && test $(stat -c %h /x/etc/abs) = 2 "
        "&& cat /x/link\n")}, builder.user)
    _tar(ctx / "a.tar", [("/etc/abs", "file", "absolute name\n"),
                         (".wh.keep", "file", "not a whiteout\n"),
                         ("link", "hardlink", "/etc/abs")], compress)
    give_to(ctx, builder.user)
    proc, _ = builder.build(ctx)
    assert proc.stderr.count("absolute name") == 2 and "not a whiteout" in proc.stderr


def test_an_archive_owner_the_mapping_lacks_is_left_to_the_builder(
        nosub_user: User, nosub_tmp: Path, busybox_store_template: Path) -> None:
    """A user without subordinate ids maps one id: a member owned by 1000 is unpacked
    (owned by root in the image), as tar does for an unprivileged user."""
    builder = Builder(nosub_user, nosub_tmp, nosub_tmp / "store")
    builder.root = builder.new_store(busybox_store_template, "store")
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\nADD own.tar /x/\nRUN stat -c '%u %n' /x/f && cat /x/f\n")},
        builder.user)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo("f")
        info.size, info.uid, info.gid = 6, 1000, 1000
        tf.addfile(info, io.BytesIO(b"owned\n"))
    (ctx / "own.tar").write_bytes(raw.getvalue())
    give_to(ctx, builder.user)
    proc, _ = builder.build(ctx)
    assert "0 /x/f" in proc.stderr and "owned" in proc.stderr
