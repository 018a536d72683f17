"""`ocibuild build` with -o keys and --annotation, rootless: a different compression
reuses every cached step (same diffIDs), base layers stay as they came unless
force-compression, annotations land where BuildKit puts them, unknown keys fail."""

from __future__ import annotations

import json
from pathlib import Path

from ocibuild.oci import mediatypes
from tests.build.conftest import Builder, step_states, write_context


def _image(layout: Path) -> tuple[dict, dict, dict]:
    """(index.json entry, manifest, config) of the one image in an OCI layout dir."""
    def blob(digest: str) -> dict:
        return json.loads((layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_text())

    entry = json.loads((layout / "index.json").read_text())["manifests"][0]
    manifest = blob(entry["digest"])
    return entry, manifest, blob(manifest["config"]["digest"])


def test_compression_annotations_and_unknown_keys(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {
        "Dockerfile": "FROM busybox:latest\nRUN echo made > /made.txt\nCOPY a.txt /\n",
        "a.txt": "a\n"}, builder.user)
    gz, zs, forced = (builder.tmp / n for n in ("gz", "zs", "forced"))

    builder.build("-o", f"type=oci,dest={gz},tar=false",
                  "--annotation", "org.opencontainers.image.title=demo",
                  "--annotation", "manifest-descriptor:org.example.where=index-json", ctx)
    entry, manifest, config = _image(gz)
    assert manifest["annotations"] == {"org.opencontainers.image.title": "demo"}
    assert entry["annotations"]["org.example.where"] == "index-json"
    assert {x["mediaType"] for x in manifest["layers"]} == {mediatypes.OCI_LAYER_GZIP}

    proc, _ = builder.build("-o", f"type=oci,dest={zs},tar=false,compression=zstd", ctx)
    assert set(step_states(proc.stderr).values()) == {"CACHED"}, proc.stderr
    _, zmanifest, zconfig = _image(zs)
    assert zconfig["rootfs"] == config["rootfs"]  # the same layers, in zstd
    assert [x["mediaType"] for x in zmanifest["layers"]] == [
        mediatypes.OCI_LAYER_GZIP, mediatypes.OCI_LAYER_ZSTD, mediatypes.OCI_LAYER_ZSTD]
    assert zmanifest["layers"][0] == manifest["layers"][0]  # busybox's, as it came

    builder.build("-o", f"type=oci,dest={forced},tar=false,compression=zstd,"
                  "force-compression=true", ctx)
    _, fmanifest, _ = _image(forced)
    assert {x["mediaType"] for x in fmanifest["layers"]} == {mediatypes.OCI_LAYER_ZSTD}
    assert fmanifest["layers"][1:] == zmanifest["layers"][1:]

    proc, _ = builder.build("-o", f"type=oci,dest={builder.tmp / 'x'},colour=red", ctx,
                            check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "unknown key 'colour' for type=oci (known: dest, tar, name, compression" in \
        proc.stderr, proc.stderr
    proc, _ = builder.build("--annotation", "index:org.example.i=1", ctx, check=False)
    assert proc.returncode != 0 and "index annotations need a multi-platform image" in \
        proc.stderr, proc.stderr
