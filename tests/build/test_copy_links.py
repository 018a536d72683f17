"""A COPY of a context directory that runs again (--no-cache, or another file of the
directory changed) links the files unchanged since the last copy from that copy's
upper directory instead of copying them (snapshot.copy_links): what the image holds
must be exactly what a full copy gives, whatever changed in the context meanwhile."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.build import imagefs
from tests.build.conftest import Builder, give_to, image_digest, write_context
from tests.support.paths import OCIBUILD

DOCKERFILE = "FROM busybox:latest\nCOPY data /data\nRUN cat /data/a.txt > /seen\n"


def _build(builder: Builder, ctx: Path, out: str, *args: str) -> imagefs.Image:
    proc, _ = builder.build(ctx, "--no-cache", "-o", f"type=oci,dest={builder.tmp / out}",
                            *args)
    return imagefs.load(builder.tmp / out, image_digest(proc.stderr))


def _last_copy(builder: Builder) -> Path:
    """The directory the last COPY of the context's `data` went to (in the trash now)."""
    snapshots = builder.root / "snapshots"
    records = [json.loads(p.read_text()) for p in (snapshots / "copies").glob("*.json")]
    assert len(records) == 1, records
    name = records[0]["step"]
    found = [p for p in (snapshots / "trash").iterdir()
             if p.name == name or p.name.startswith(f"{name}.")]
    assert len(found) == 1, (name, list((snapshots / "trash").iterdir()))
    return found[0] / "upper" / records[0]["dest"]


def _inodes(top: Path) -> dict[str, int]:
    return {str(p.relative_to(top)): p.lstat().st_ino for p in top.rglob("*") if p.is_file()}


def _settle() -> None:
    """Past the slack a copy allows for the clock the kernel stamps ctime with."""
    time.sleep(1.2)


def test_unchanged_files_are_linked_and_changed_ones_copied(builder: Builder) -> None:
    files: dict[str, str | bytes] = {f"data/d{i % 3}/f{i}.txt": f"file {i}\n"
                                     for i in range(60)}
    files.update({"data/a.txt": "first\n", "data/same.txt": "old content\n",
                  "data/big.bin": os.urandom(3 << 20), "Dockerfile": DOCKERFILE})
    ctx = write_context(builder.tmp / "ctx", files, builder.user)
    _settle()
    first = _build(builder, ctx, "one.oci")
    before = _inodes(_last_copy(builder))

    same = ctx / "data" / "same.txt"
    st = same.stat()
    same.write_text("new content\n")  # the same size, and the mtime put back
    os.utime(same, ns=(st.st_atime_ns, st.st_mtime_ns))
    (ctx / "data" / "a.txt").write_text("second\n")
    added = ctx / "data" / "d1" / "added.txt"
    added.write_text("added\n")
    os.chown(added, builder.user.uid, builder.user.gid)  # only this one: a chown is a change
    second = _build(builder, ctx, "two.oci")
    after = _inodes(_last_copy(builder))

    assert second.files["data/same.txt"].data == b"new content\n"
    assert second.files["data/a.txt"].data == b"second\n"
    assert second.files["seen"].data == b"second\n"
    assert second.files["data/d1/added.txt"].data == b"added\n"
    unchanged = set(before) - {"same.txt", "a.txt"}
    for name in unchanged:
        assert second.files[f"data/{name}"].data == first.files[f"data/{name}"].data
        info = second.files[f"data/{name}"].info
        assert (info.uid, info.gid, info.mode) == (0, 0, 0o644)
    assert {n for n in unchanged if after[n] == before[n]} == unchanged, \
        "every unchanged file is the last copy's, linked"
    assert after["same.txt"] != before["same.txt"] and after["a.txt"] != before["a.txt"]

    pruned = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "prune"])
    assert pruned.returncode == 0, pruned.stderr
    assert not (builder.root / "snapshots" / "copies").exists()
    third = _build(builder, ctx, "three.oci")  # nothing to link from: a full copy
    assert third.files["data/same.txt"].data == b"new content\n"
    # every file its own: not a link to any other copy. (Not "no inode number of the
    # second copy": the prune freed those, and the filesystem gives them out again.)
    copy = _last_copy(builder)
    assert {rel: (copy / rel).lstat().st_nlink for rel in _inodes(copy)} == \
        dict.fromkeys(after, 1)


def test_a_copy_with_another_owner_or_mode_links_nothing(builder: Builder) -> None:
    files: dict[str, str | bytes] = {f"data/f{i}.txt": f"{i}\n" for i in range(20)}
    files["data/a.txt"] = "a\n"
    ctx = write_context(builder.tmp / "ctx", {
        **files, "Dockerfile": DOCKERFILE.replace("COPY ", "COPY --chown=7:8 --chmod=600 ")},
        builder.user)
    _settle()
    _build(builder, ctx, "one.oci")
    before = _inodes(_last_copy(builder))
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    image = _build(builder, ctx, "two.oci")
    after = _inodes(_last_copy(builder))
    info = image.files["data/f3.txt"].info
    assert (info.uid, info.gid, info.mode) == (0, 0, 0o644)
    assert not {n for n in before if after[n] == before[n]}


def test_a_link_never_reaches_outside_the_last_copy(builder: Builder) -> None:
    """The last copy held `sub` as a symbolic link to a directory of the builder's user;
    the context now has a directory `sub` whose file looks, by its size, mtime, mode and
    owner, like the file there. The image gets the context's file, never that one."""
    outside = builder.tmp / "outside"
    outside.mkdir()
    (outside / "secret").write_text("TOP SECRET\n")
    staged = builder.tmp / "ctx" / "staged"
    ctx = write_context(builder.tmp / "ctx", {"data/a.txt": "a\n", "staged/secret": "harmless!!\n",
                                              "Dockerfile": DOCKERFILE}, builder.user)
    (ctx / "data" / "sub").symlink_to(outside)
    mtime = 1_600_000_000_000_000_000
    for path in (outside / "secret", staged / "secret"):
        path.chmod(0o644)
        os.utime(path, ns=(mtime, mtime))
    give_to(outside, builder.user)
    give_to(ctx, builder.user)
    _settle()
    _build(builder, ctx, "one.oci")

    (ctx / "data" / "sub").unlink()
    staged.rename(ctx / "data" / "sub")  # the file's own ctime stays as it was
    image = _build(builder, ctx, "two.oci")
    assert image.files["data/sub/secret"].data == b"harmless!!\n"


def test_a_copy_with_here_documents_is_not_linked_from(builder: Builder) -> None:
    """A COPY of a context directory and here-documents writes the documents into the
    same upper directory after the directory's files (replacing one of them here): no
    later copy may take that directory for a plain copy of the context's."""
    dockerfile = "FROM busybox:latest\nCOPY data <<a.txt /data/\nfrom the document\na.txt\n"
    ctx = write_context(builder.tmp / "ctx", {"data/a.txt": "from the context\n",
                                              "data/b.txt": "b\n", "Dockerfile": dockerfile},
                        builder.user)
    _settle()
    first = _build(builder, ctx, "one.oci")
    assert first.files["data/a.txt"].data == b"from the document\n"
    assert first.files["data/b.txt"].data == b"b\n"
    assert not list((builder.root / "snapshots" / "copies").glob("*.json"))

    (ctx / "Dockerfile").write_text(DOCKERFILE)
    second = _build(builder, ctx, "two.oci")
    assert second.files["data/a.txt"].data == b"from the context\n"


def test_copy_into_a_workdir_an_earlier_step_filled(builder: Builder) -> None:
    """The usual `COPY package.json .`, `RUN npm ci`, `COPY . .`: the last COPY goes into
    a directory that holds the earlier steps' files, merges with them as a copy through
    the mount would, and links what is unchanged when it runs again."""
    dockerfile = ("FROM busybox:latest\nWORKDIR /app\nCOPY deps.txt ./\n"
                  "RUN mkdir -p modules src && echo m > modules/m.js"
                  " && echo gen > src/generated.txt && echo file > config\n"
                  "COPY . .\n")
    files: dict[str, str | bytes] = {f"src/f{i}.txt": f"{i}\n" for i in range(30)}
    files.update({"deps.txt": "deps\n", "config/app.ini": "x=1\n", "Dockerfile": dockerfile,
                  ".dockerignore": "modules\n", "modules/local.js": "not copied\n"})
    ctx = write_context(builder.tmp / "ctx", files, builder.user)
    _settle()
    first = _build(builder, ctx, "one.oci")
    assert first.files["app/modules/m.js"].data == b"m\n"
    assert "app/modules/local.js" not in first.files
    assert first.files["app/src/generated.txt"].data == b"gen\n"
    assert first.files["app/src/f7.txt"].data == b"7\n"
    assert first.files["app/config/app.ini"].data == b"x=1\n"
    assert first.files["app/deps.txt"].data == b"deps\n"
    before = _inodes(_last_copy(builder))

    (ctx / "src" / "f7.txt").write_text("seven\n")
    second = _build(builder, ctx, "two.oci")
    assert second.files["app/src/f7.txt"].data == b"seven\n"
    assert second.files["app/modules/m.js"].data == b"m\n"
    after = _inodes(_last_copy(builder))
    unchanged = {n for n in before if n.startswith("src/") and n != "src/f7.txt"}
    assert len(unchanged) == 29 and all(after[n] == before[n] for n in unchanged)
    assert after["src/f7.txt"] != before["src/f7.txt"]
