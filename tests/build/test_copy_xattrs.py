"""COPY keeps extended attributes, from the context and from another stage.

BuildKit copies with tonistiigi/fsutil (copy/copy_linux.go copyXAttrs: every xattr the
source lists is set on the copy; solver/llbsolver/file/backend.go passes an error
handler that only logs, so an attribute the builder may not set is skipped). The layer
then carries them as PAX `SCHILY.xattr.*` records. A file capability read inside the
build's user namespace is the plain (v2) form, as the image must hold it; `trusted.*`
is invisible there and is left out.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from tests.build import imagefs
from tests.build.conftest import Builder, write_context

_XATTR = "SCHILY.xattr."


@pytest.mark.parametrize("snapshotter", ["overlay", "native"])
def test_copy_keeps_user_xattrs_and_file_capabilities(builder: Builder,
                                                      snapshotter: str) -> None:
    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": (
            "FROM busybox:latest AS src\n"
            "COPY a.txt ping /src/\n"
            "COPY d /src/d\n"
            "FROM busybox:latest\n"
            "COPY --from=src /src /from\n"
            "COPY a.txt /ctx/\n"),
        "a.txt": "a\n", "ping": "not really ping\n", "d/sub/b.txt": "b\n"}, builder.user)
    os.setxattr(ctx / "a.txt", "user.note", b"kept")
    os.setxattr(ctx / "a.txt", "trusted.secret", b"host only")
    os.setxattr(ctx / "d" / "sub", "user.dir", b"on a directory")
    os.setxattr(ctx / "d" / "sub" / "b.txt", "user.empty", b"")
    subprocess.run(["setcap", "cap_net_raw+ep", ctx / "ping"], check=True)
    capability = os.getxattr(ctx / "ping", "security.capability")
    out = builder.tmp / "out.oci"
    builder.build(ctx, "--snapshotter", snapshotter, "-o", f"type=oci,dest={out}")
    image = imagefs.load(out)

    def xattrs(path: str) -> dict[str, bytes]:
        headers = image.files[path].info.pax_headers
        return {k[len(_XATTR):]: v.encode("utf-8", "surrogateescape")
                for k, v in headers.items() if k.startswith(_XATTR)}

    for where in ("from", "ctx"):
        assert xattrs(f"{where}/a.txt") == {"user.note": b"kept"}
    assert xattrs("from/d/sub") == {"user.dir": b"on a directory"}
    assert xattrs("from/d/sub/b.txt") == {"user.empty": b""}
    assert xattrs("from/ping") == {"security.capability": capability}


def test_a_capability_set_inside_the_build_is_recorded_plain(builder: Builder) -> None:
    """A capability set in the build's user namespace is stored on disk in the namespaced
    (v3) form with the namespace's root; the layers hold the plain form read back
    inside the namespace, as BuildKit's rootless layers do: ADD sets it, COPY --from
    copies it, and both layers carry the same bytes as the archive."""
    probe = builder.tmp / "probe"
    probe.write_bytes(b"")
    subprocess.run(["setcap", "cap_net_raw+ep", probe], check=True)
    capability = os.getxattr(probe, "security.capability")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("ping")
        info.size, info.mode = 5, 0o755
        info.pax_headers = {_XATTR + "security.capability":
                            capability.decode("utf-8", "surrogateescape")}
        tf.addfile(info, io.BytesIO(b"ping\n"))
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest AS src\nADD caps.tar /bin2/\n"
        "FROM busybox:latest\nCOPY --from=src /bin2/ping /bin3/ping\n"),
        "caps.tar": raw.getvalue()}, builder.user)
    out = builder.tmp / "out.oci"
    builder.build(ctx, "--snapshotter", "overlay", "-o", f"type=oci,dest={out}")
    top = imagefs.load(out).top["bin3/ping"].info.pax_headers
    assert top[_XATTR + "security.capability"].encode("utf-8", "surrogateescape") == capability
    src_out = builder.tmp / "src.oci"
    builder.build(ctx, "--target", "src", "-o", f"type=oci,dest={src_out}")
    added = imagefs.load(src_out).top["bin2/ping"].info.pax_headers
    assert added[_XATTR + "security.capability"].encode("utf-8", "surrogateescape") == capability
