"""push_blobs: the blob half of a push, for callers that write their own manifest (the
--cache-to exporter). Each blob is skipped, mounted or uploaded, and fetched into the
layout only when it must be uploaded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocibuild.errors import OcibuildError
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import load_image
from ocibuild.oci.layout import ImageLayout
from ocibuild.registry import BlobSources, ClientPool, RegistryClient, push_blobs
from tests.registry.conftest import BaseImages
from tests.support.registry_server import Proxy

UPLOAD = r"/blobs/uploads/"


@pytest.fixture
def client(proxy: Proxy) -> Iterator[RegistryClient]:
    pool = ClientPool()
    yield pool.get(proxy.host)
    pool.close()


def _repo(name: str) -> str:
    return f"blobs-{uuid.uuid4().hex[:8]}/{name}"


def _app_blobs(images: BaseImages) -> list[Descriptor]:
    manifest = load_image(images.layout, "app").manifest
    return [manifest.config, *manifest.layers]


def test_each_blob_is_uploaded_once_then_skipped_then_mounted_elsewhere(
        client: RegistryClient, proxy: Proxy, images: BaseImages) -> None:
    blobs = _app_blobs(images)
    sources = BlobSources()
    first, other = _repo("first"), _repo("other")
    sent = push_blobs(client, first, images.layout, blobs, what="test", sources=sources)
    assert (sent.uploaded, sent.mounted, sent.skipped) == (len(blobs), 0, 0)
    assert sent.bytes_uploaded == sum(b.size for b in blobs)
    assert sorted(sources.repositories(client.registry, blobs[0].digest)) == [first]

    proxy.reset()
    again = push_blobs(client, first, images.layout, [*blobs, blobs[0]], what="test",
                       sources=sources)
    assert (again.uploaded, again.mounted, again.skipped) == (0, 0, len(blobs))
    assert proxy.requests("POST", UPLOAD) == []

    proxy.reset()
    moved = push_blobs(client, other, images.layout, blobs, what="test", sources=sources)
    assert (moved.uploaded, moved.mounted, moved.skipped) == (0, len(blobs), 0)
    assert proxy.requests("PUT", UPLOAD) == [] and proxy.requests("PATCH") == []


def test_a_blob_missing_from_the_layout_is_fetched_only_when_no_mount_or_copy_will_do(
        client: RegistryClient, proxy: Proxy, images: BaseImages, tmp_path: Path) -> None:
    config, base_layer, app_layer = _app_blobs(images)
    sources = BlobSources()
    elsewhere, dest = _repo("elsewhere"), _repo("dest")
    push_blobs(client, elsewhere, images.layout, [base_layer], what="seed", sources=sources)
    push_blobs(client, dest, images.layout, [config], what="seed")
    empty = ImageLayout.init(tmp_path / "empty")  # holds none of the three
    fetched: list[str] = []

    def fetch(blob: Descriptor) -> bool:
        with images.layout.open_blob(blob.digest, blob.size) as src:
            empty.put_stream(src, expected_digest=blob.digest,  # type: ignore[arg-type]
                             expected_size=blob.size)
        fetched.append(blob.digest)
        return True

    proxy.reset()
    sent = push_blobs(client, dest, empty, [config, base_layer, app_layer], what="test",
                      sources=sources, fetch=fetch)
    # the config was there, the base layer mounted from `elsewhere`: only one download
    assert (sent.skipped, sent.mounted, sent.uploaded) == (1, 1, 1)
    assert fetched == [app_layer.digest]
    assert [s.status for s in proxy.requests("PUT", UPLOAD)] == [201]


def test_a_missing_blob_without_a_way_to_fetch_it_is_an_error_naming_it(
        client: RegistryClient, images: BaseImages, tmp_path: Path) -> None:
    layer = _app_blobs(images)[-1]
    empty = ImageLayout.init(tmp_path / "empty")
    with pytest.raises(OcibuildError) as failure:
        push_blobs(client, _repo("none"), empty, [layer], what="push x",
                   fetch=lambda _: False)
    message = str(failure.value)
    assert message.startswith(f"push x: blob {layer.digest[:19]}") and "not in" in message
    with pytest.raises(OcibuildError, match="could not mount"):
        push_blobs(client, _repo("none"), empty, [layer], what="push x")
