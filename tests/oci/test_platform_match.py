"""Which index entry a wanted platform takes (containerd's matcher), the --platform
list, and the index a multi-platform build writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import select_platform
from ocibuild.oci.index import write_index
from ocibuild.oci.layout import ImageLayout
from ocibuild.oci.manifest import Index
from ocibuild.oci.platform import Platform, parse_platforms

P = Platform.parse
DIGESTS = {name: "sha256:" + f"{i:064x}" for i, name in enumerate(
    ["amd64", "arm64/v8", "arm/v5", "arm/v6", "arm/v7", "amd64/v2"], start=1)}


def _index(*names: str) -> Index:
    return Index(tuple(Descriptor("application/vnd.oci.image.manifest.v1+json", DIGESTS[n], 1,
                                  platform=P("linux/" + n)) for n in names))


@pytest.mark.parametrize(("wanted", "entries", "picked"), [
    ("linux/arm64", ("amd64", "arm64/v8"), "arm64/v8"),  # arm64 is arm64/v8
    ("linux/arm64/v8", ("arm64/v8",), "arm64/v8"),
    ("linux/arm/v7", ("arm/v5", "arm/v6"), "arm/v6"),  # the newest older variant
    ("linux/arm", ("arm/v6", "arm/v7"), "arm/v7"),  # a bare arm is arm/v7
    ("linux/arm/v7", ("arm/v5", "arm/v7", "arm/v6"), "arm/v7"),
    ("linux/amd64/v3", ("amd64", "amd64/v2"), "amd64/v2"),
    ("linux/amd64", ("amd64/v2", "amd64"), "amd64"),
    ("linux/amd64", ("amd64/v2",), "amd64/v2"),  # no variant asked: any, at last
])
def test_the_best_matching_variant_is_picked(wanted: str, entries: tuple[str, ...],
                                             picked: str) -> None:
    assert select_platform(_index(*entries), P(wanted), "img").digest == DIGESTS[picked]


@pytest.mark.parametrize(("wanted", "entries"), [
    ("linux/arm/v6", ("arm/v7",)),  # a newer variant does not run on an older CPU
    ("linux/arm/v5", ("arm/v6",)),
    ("linux/arm64", ("arm/v7",)),
])
def test_no_match_names_what_there_is(wanted: str, entries: tuple[str, ...]) -> None:
    with pytest.raises(Exception, match="no image for platform"):
        select_platform(_index(*entries), P(wanted), "img")


def test_platform_list_keeps_order_and_drops_repeats() -> None:
    assert parse_platforms("linux/arm64, linux/amd64,linux/arm64") == (
        P("linux/arm64"), P("linux/amd64"))
    assert P("linux/arm/v7").dirname == "linux_arm_v7"
    with pytest.raises(ValueError, match="expected os/arch"):
        parse_platforms("linux")


def test_write_index_lists_the_manifests_with_their_platforms(tmp_path: Path) -> None:
    layout = ImageLayout.init(tmp_path / "layout")
    found = []
    for arch in ("amd64", "arm64"):
        digest = layout.put_bytes(json.dumps({"arch": arch}).encode())
        found.append(Descriptor("application/vnd.oci.image.manifest.v1+json", digest, 16,
                                platform=P(f"linux/{arch}")))
    desc = write_index(layout, found, {"org.example": "1"})
    index = json.loads(layout.read_blob(desc.digest))
    assert desc.media_type == index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    assert index["annotations"] == {"org.example": "1"}
    missing = Descriptor("application/vnd.oci.image.manifest.v1+json", DIGESTS["amd64"], 1)
    with pytest.raises(Exception, match="is missing"):
        write_index(layout, [missing])
