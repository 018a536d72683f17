"""One row per COPY/ADD rule: the files, owners and modes the image must hold."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder
from tests.build.table import Row, build_rows, text

FROM = "FROM busybox:latest\n"
FILES: dict[str, str | bytes] = {
    "f.txt": "file\n", "a.txt": "a\n", "b.txt": "b\n", "c.md": "c\n",
    "dir/x.txt": "x\n", "dir/sub/y.txt": "y\n", "dir/debug.log": "log\n",
    "tree/a/b/c.txt": "deep\n",
}


def _tar(members: dict[str, str], compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content.encode())
            info.mode = 0o640
            info.uid, info.gid = 1000, 1000
            info.mtime = 1_600_000_000
            tf.addfile(info, io.BytesIO(content.encode()))
    return buf.getvalue()


def _only_top(img: imagefs.Image, *paths: str) -> None:
    """The last layer holds these files (and their parent directories), nothing else."""
    files = {k for k, e in img.top.items() if not e.info.isdir()}
    assert files == set(paths), files


def _to_dir(img: imagefs.Image) -> None:
    assert text(img, "dest/f.txt") == "file\n"
    _only_top(img, "dest/f.txt")


def _rename(img: imagefs.Image) -> None:
    assert text(img, "renamed") == "file\n" and "f.txt" not in img.files


def _dir_contents(img: imagefs.Image) -> None:
    assert text(img, "d/x.txt") == "x\n" and text(img, "d/sub/y.txt") == "y\n"
    assert "d/dir" not in img.files
    assert img.files["d/lnk"].info.issym()


def _wildcard(img: imagefs.Image) -> None:
    assert text(img, "w/a.txt") == "a\n" and text(img, "w/b.txt") == "b\n"
    assert "w/c.md" not in img.files


def _chown_ids(img: imagefs.Image) -> None:
    info = img.files["o/f.txt"].info
    assert (info.uid, info.gid) == (1000, 1001)
    parent = img.files["o"].info  # a directory COPY creates gets the owner too
    assert (parent.uid, parent.gid) == (1000, 1001)


def _chown_name(img: imagefs.Image) -> None:
    info = img.files["n/f.txt"].info
    assert (info.uid, info.gid) == (65534, 65534)


def _default_owner(img: imagefs.Image) -> None:
    info = img.files["f.txt"].info
    assert (info.uid, info.gid) == (0, 0)  # the context belongs to the builder: no matter


def _chmod(img: imagefs.Image) -> None:
    assert img.files["m/f.txt"].info.mode & 0o7777 == 0o640


def _mode_kept(img: imagefs.Image) -> None:
    assert img.files["tool.sh"].info.mode & 0o7777 == 0o751


SET_ID_MODES = {"suid": 0o4755, "sgid": 0o2750, "sticky-empty": 0o1600, "wide": 0o666,
                "owner-read": 0o400}


def _set_id(img: imagefs.Image) -> None:
    """Modes a umask would cut, or a chown would clear, come through whole."""
    for top, owner in (("sid", (1000, 1001)), ("sid0", (0, 0))):
        for name, mode in SET_ID_MODES.items():
            info = img.files[f"{top}/{name}"].info
            assert (info.mode & 0o7777, (info.uid, info.gid)) == (mode, owner), (top, name)


def _link(img: imagefs.Image) -> None:
    assert text(img, "linked/f.txt") == "file\n"
    assert "bin/busybox" in img.files  # the base is still below
    _only_top(img, "linked/f.txt")


def _exclude(img: imagefs.Image) -> None:
    assert text(img, "e/x.txt") == "x\n" and "e/debug.log" not in img.files


def _parents(img: imagefs.Image) -> None:
    assert text(img, "p/tree/a/b/c.txt") == "deep\n"


def _dockerignore(img: imagefs.Image) -> None:
    assert text(img, "all/a.txt") == "a\n"
    assert "all/c.md" not in img.files and "all/dir/debug.log" not in img.files
    assert text(img, "all/dir/x.txt") == "x\n"


def _from_stage(img: imagefs.Image) -> None:
    assert text(img, "copied/made") == "in stage\n"
    assert img.files["copied/made"].info.uid == 1000  # owners kept from a stage


def _relative_dest(img: imagefs.Image) -> None:
    assert text(img, "work/here/f.txt") == "file\n"


def _symlink(img: imagefs.Image) -> None:
    # a source that is a symbolic link is followed; links inside a copied tree are kept
    assert text(img, "s/link") == "file\n"
    inner = img.files["s/dir/lnk"].info
    assert inner.issym() and inner.linkname == "x.txt"


def _mtime_kept(img: imagefs.Image) -> None:
    assert img.files["t/f.txt"].info.mtime == 1_500_000_000


def _add_tar(img: imagefs.Image) -> None:
    assert text(img, "x/inner/one.txt") == "one\n"
    assert img.files["x/inner/one.txt"].info.uid == 1000  # archive owners kept
    assert "x/arch.tar" not in img.files


def _add_tgz(img: imagefs.Image) -> None:
    assert text(img, "z/two.txt") == "two\n"


def _add_plain(img: imagefs.Image) -> None:
    assert text(img, "plain/f.txt") == "file\n"


def _copy_tar(img: imagefs.Image) -> None:
    assert "ct/arch.tar" in img.files and "ct/inner/one.txt" not in img.files


def _heredoc(img: imagefs.Image) -> None:
    assert text(img, "greeting.txt") == "hello world\n"
    assert text(img, "script.sh") == 'echo "hello bar" $FOO\n'
    info = img.files["script.sh"].info
    assert info.mode & 0o7777 == 0o755 and (info.uid, info.gid) == (0, 0)
    assert img.files["greeting.txt"].info.mode & 0o7777 == 0o644


def _heredoc_two(img: imagefs.Image) -> None:
    assert text(img, "hd/ONE") == "1\n" and text(img, "hd/TWO") == "2 $X\n"


ROWS = [
    Row("to-dir", FROM + "COPY f.txt /dest/\n", _to_dir),
    Row("rename", FROM + "COPY f.txt /renamed\n", _rename),
    Row("dir-contents", FROM + "COPY dir /d\n", _dir_contents),
    Row("wildcard", FROM + "COPY *.txt /w/\n", _wildcard),
    Row("chown-ids", FROM + "COPY --chown=1000:1001 f.txt /o/\n", _chown_ids),
    Row("chown-name", FROM + "COPY --chown=nobody:nogroup f.txt /n/\n", _chown_name),
    Row("default-owner", FROM + "COPY f.txt /\n", _default_owner),
    Row("chmod", FROM + "COPY --chmod=640 f.txt /m/\n", _chmod),
    Row("mode-kept", FROM + "COPY tool.sh /\n", _mode_kept),
    Row("set-id", FROM + "COPY --chown=1000:1001 modes/ /sid/\nCOPY modes/ /sid0/\n",
        _set_id, {f"modes/{name}": "" if "empty" in name else name for name in SET_ID_MODES}),
    Row("link", FROM + "COPY --link f.txt /linked/\n", _link),
    Row("exclude", FROM + "COPY --exclude=*.log dir/ /e/\n", _exclude),
    Row("parents", FROM + "COPY --parents tree/a/b/c.txt /p/\n", _parents),
    Row("dockerignore", FROM + "COPY . /all/\n", _dockerignore),
    Row("from-stage", "FROM busybox:latest AS st\nRUN echo 'in stage' > /made && "
        "chown 1000:1000 /made\n" + FROM + "COPY --from=st /made /copied/\n", _from_stage),
    Row("relative-dest", FROM + "WORKDIR /work\nCOPY f.txt here/\n", _relative_dest),
    Row("symlink", FROM + "COPY link /s/\nCOPY dir /s/dir\n", _symlink),
    Row("mtime-kept", FROM + "COPY f.txt /t/\n", _mtime_kept),
    Row("add-tar", FROM + "ADD arch.tar /x/\n", _add_tar),
    Row("add-tgz", FROM + "ADD arch.tgz /z/\n", _add_tgz),
    Row("add-plain", FROM + "ADD f.txt /plain/\n", _add_plain),
    Row("copy-tar", FROM + "COPY arch.tar /ct/\n", _copy_tar),
    Row("heredoc", FROM + "ARG FOO=bar\nCOPY <<EOF greeting.txt\nhello world\nEOF\n"
        "COPY --chmod=755 <<-EOT /script.sh\n\techo \"hello ${FOO}\" \\$FOO\n\tEOT\n",
        _heredoc),
    Row("heredoc-two", FROM + "COPY <<ONE <<\"TWO\" /hd/\n1\nONE\n2 $X\nTWO\n", _heredoc_two),
]


def _prepare(row: Row, ctx: Path) -> None:
    (ctx / "tool.sh").write_text("#!/bin/sh\n")
    os.chmod(ctx / "tool.sh", 0o751)
    os.symlink("f.txt", ctx / "link")
    os.symlink("x.txt", ctx / "dir" / "lnk")
    os.utime(ctx / "f.txt", (1_500_000_000, 1_500_000_000))
    (ctx / "arch.tar").write_bytes(_tar({"inner/one.txt": "one\n"}))
    (ctx / "arch.tgz").write_bytes(_tar({"two.txt": "two\n"}, "gz"))
    if row.id == "dockerignore":
        (ctx / ".dockerignore").write_text("*.md\n**/*.log\ntool.sh\narch.*\nlink\n")
    for p in [ctx, *ctx.rglob("*")]:
        os.lchown(p, os.stat(ctx).st_uid, os.stat(ctx).st_gid)
    for name, mode in SET_ID_MODES.items() if row.id == "set-id" else ():
        os.chmod(ctx / "modes" / name, mode)  # after the chown, which clears set-id bits


@pytest.fixture(scope="module")
def built(module_builder: Builder) -> dict[str, imagefs.Image | str]:
    rows = [Row(r.id, r.dockerfile, r.check, {**FILES, **r.files}, r.options) for r in ROWS]
    return {row.id: image for row, image in build_rows(module_builder, rows, "copy",
                                                        _prepare)}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_copy_rule(row: Row, built: dict[str, imagefs.Image | str]) -> None:
    image = built[row.id]
    assert not isinstance(image, str), f"the build failed: {image}"
    row.check(image)
