"""The overlay and native snapshotters give byte-identical layers for the same steps."""

from __future__ import annotations

from pathlib import Path

from tests.build import imagefs
from tests.build.conftest import Builder, copy_fixture

EPOCH = 1_700_000_000


def test_overlay_and_native_write_identical_layers(builder: Builder) -> None:
    ctx = copy_fixture("snapshotters", builder.tmp / "ctx", builder.user)
    outs = {kind: builder.tmp / f"{kind}.oci" for kind in ("overlay", "native")}
    results = builder.batch([
        {"context": str(ctx), "snapshotter": kind, "no_cache": True,
         "source_date_epoch": EPOCH, "outputs": [f"type=oci,dest={out}"]}
        for kind, out in outs.items()])
    assert all("manifest" in r for r in results), results
    overlay, native = (imagefs.load(Path(out)) for out in outs.values())
    assert len(overlay.layer_digests) >= 7
    assert overlay.layer_digests == native.layer_digests
    assert overlay.manifest_digest == native.manifest_digest
    # the steps did what they say (so the equality covers whiteouts and opaque dirs)
    assert "added" not in overlay.files and "home/only" in overlay.files
    assert not any(k.startswith("home/user") for k in overlay.files)
    assert overlay.files["state-link"].info.issym()
    assert "var/lib/app/state" not in overlay.files and "var/lib/app/again" in overlay.files
    assert overlay.files["etc/group"].info.mode & 0o777 == 0o700
    assert overlay.files["etc/passwd"].info.mtime == 1_000_000
