"""The image layout: atomic, idempotent, verified blobs; tags; the layout tar."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ocibuild.errors import DigestMismatchError
from ocibuild.oci import digest, mediatypes
from ocibuild.oci.config import History, ImageConfig
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import load_image, write_image
from ocibuild.oci.layout import ImageLayout, LayoutError
from ocibuild.oci.layout_tar import pack, unpack
from ocibuild.oci.manifest import Index
from ocibuild.oci.platform import Platform
from tests.support.schemas import validate


def _tiny_image(layout: ImageLayout, payload: bytes, tags: list[str]) -> Descriptor:
    # A "layer" that is an empty tar: 1024 zero bytes; the payload varies the config.
    layer = b"\0" * 1024
    dgst = layout.put_bytes(layer)
    config = ImageConfig(architecture="amd64", os="linux",
                         config={"Labels": {"p": payload.decode()}},
                         diff_ids=(dgst,), history=(History(created_by="test"),))
    return write_image(layout, config, [Descriptor(mediatypes.OCI_LAYER, dgst, len(layer))],
                       tags=tags)


def test_blob_writes_are_idempotent_and_verified(tmp_path: Path) -> None:
    layout = ImageLayout.init(tmp_path / "l")
    d1 = layout.put_bytes(b"hello")
    d2 = layout.put_bytes(b"hello")
    assert d1 == d2 == digest.of_bytes(b"hello")
    assert layout.read_blob(d1) == b"hello"
    # No temporary files are left behind.
    assert sorted(p.name for p in layout.path.iterdir()) == ["blobs", "index.json", "oci-layout"]
    # Corrupt the blob on disk: reading it is refused.
    layout.blob_path(d1).chmod(0o644)
    layout.blob_path(d1).write_bytes(b"HELLO")
    with pytest.raises(DigestMismatchError):
        layout.read_blob(d1)


def test_blob_writer_with_wrong_expected_digest_leaves_nothing(tmp_path: Path) -> None:
    layout = ImageLayout.init(tmp_path / "l")
    wrong = digest.of_bytes(b"other")
    with pytest.raises(DigestMismatchError), layout.blob_writer(expected_digest=wrong) as w:
        w.write(b"data")
        w.commit()
    assert not layout.has_blob(wrong)
    assert not layout.has_blob(digest.of_bytes(b"data"))
    assert not [p for p in layout.path.iterdir() if p.name.startswith(".tmp-")]


def test_interrupted_blob_write_leaves_nothing(tmp_path: Path) -> None:
    layout = ImageLayout.init(tmp_path / "l")
    with pytest.raises(KeyboardInterrupt), layout.blob_writer() as w:
        w.write(b"partial")
        raise KeyboardInterrupt
    assert list(layout.blobs()) == []
    assert not [p for p in layout.path.iterdir() if p.name.startswith(".tmp-")]


def test_a_blob_handed_to_the_disk_while_written_is_whole(tmp_path: Path) -> None:
    """A large blob's bytes go to the disk's writeback while it is written (and leave
    the page cache): what is committed and read back is every byte, in order."""
    from ocibuild.oci.layout import WRITEBACK_EVERY

    layout = ImageLayout.init(tmp_path / "l")
    chunks = [os.urandom(1 << 20) for _ in range(WRITEBACK_EVERY // (1 << 20) * 2 + 3)]
    with layout.blob_writer() as w:
        for chunk in chunks:
            w.write(chunk)
        w.write(b"tail")
        desc = w.commit()
    whole = b"".join(chunks) + b"tail"
    assert desc.digest == digest.of_bytes(whole) and desc.size == len(whole)
    assert layout.blob_path(desc.digest).read_bytes() == whole


def test_several_tags_in_one_layout(tmp_path: Path) -> None:
    layout = ImageLayout.init(tmp_path / "l")
    a = _tiny_image(layout, b"a", ["one", "two"])
    b = _tiny_image(layout, b"b", ["three"])
    assert set(layout.tags()) == {"one", "two", "three"}
    assert layout.resolve("one").digest == a.digest == layout.resolve("two").digest
    # Retagging moves the tag, it does not duplicate it.
    layout.tag("one", b)
    assert layout.resolve("one").digest == b.digest
    assert len(layout.index().manifests) == 3
    validate("index", json.loads((layout.path / "index.json").read_text()))
    for tag in ("one", "two", "three"):
        res = subprocess.run(["skopeo", "inspect", f"oci:{layout.path}:{tag}"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    with pytest.raises(LayoutError, match="no image tagged"):
        layout.resolve("four")


def test_load_image_selects_platform_from_an_index(tmp_path: Path) -> None:
    layout = ImageLayout.init(tmp_path / "l")
    amd = _tiny_image(layout, b"amd64", [])
    arm_cfg = ImageConfig(architecture="arm64", os="linux", variant="v8",
                          diff_ids=(), history=())
    arm = write_image(layout, arm_cfg, [])
    idx = Index((Descriptor(amd.media_type, amd.digest, amd.size,
                            platform=Platform("linux", "amd64")),
                 Descriptor(arm.media_type, arm.digest, arm.size,
                            platform=Platform("linux", "arm64", "v8"))))
    layout.tag("multi", layout.put_manifest(idx))
    validate("index", idx.to_dict())
    assert load_image(layout, "multi", Platform("linux", "arm64")).digest == arm.digest
    assert load_image(layout, "multi", Platform("linux", "amd64")).digest == amd.digest


def test_layout_tar_round_trip(tmp_path: Path) -> None:
    layout = ImageLayout.init(tmp_path / "l")
    desc = _tiny_image(layout, b"x", ["latest"])
    tar1, tar2 = tmp_path / "a.tar", tmp_path / "b.tar"
    pack(layout, tar1)
    pack(layout, tar2)
    assert tar1.read_bytes() == tar2.read_bytes()  # deterministic
    res = subprocess.run(["skopeo", "inspect", f"oci-archive:{tar1}:latest"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["Digest"] == desc.digest
    back = unpack(tar1, tmp_path / "back")
    assert back.resolve("latest").digest == desc.digest
    assert os.listdir(back.path / "blobs/sha256") == os.listdir(layout.path / "blobs/sha256")
