"""The `-o` keys of image outputs (compression, compression-level, force-compression,
oci-mediatypes, annotation*, name, tar, push) and `--annotation`, checked on what the
exporters write and with the tools that read it (zstd, skopeo, umoci)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from ocibuild.cache import Store
from ocibuild.errors import UsageError
from ocibuild.exporter import BuildResult, export, parse_annotations, parse_output
from ocibuild.oci import mediatypes
from ocibuild.oci.platform import host
from tests.exporter.test_output_schemas import _validate_layout_dir

PLATFORM = f"{host().os}/{host().architecture}"


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()


def _manifest(layout: Path, entry: int = 0) -> tuple[dict, dict]:
    """(the index.json entry, the manifest it names) of an OCI layout directory."""
    desc = json.loads((layout / "index.json").read_text())["manifests"][entry]
    return desc, json.loads(_blob(layout, desc["digest"]))


def _export_oci(result: BuildResult, store: Store, dest: Path, keys: str = "",
                **kwargs: object) -> tuple[dict, dict]:
    spec = f"type=oci,dest={dest},tar=false" + (f",{keys}" if keys else "")
    export(result, [parse_output(spec)], store, **kwargs)  # type: ignore[arg-type]
    return _manifest(dest)


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_zstd_layers_decompress_to_their_diff_ids(store: Store, two_layer_result: BuildResult,
                                                 tmp_path: Path) -> None:
    dest = tmp_path / "zstd"
    _, manifest = _export_oci(two_layer_result, store, dest, "compression=zstd")
    assert [x["mediaType"] for x in manifest["layers"]] == [mediatypes.OCI_LAYER_ZSTD] * 2
    for layer, diff_id in zip(manifest["layers"], two_layer_result.config.diff_ids,
                              strict=True):
        blob = dest / "blobs/sha256" / layer["digest"].removeprefix("sha256:")
        plain = subprocess.run(["zstd", "-d", "-c", str(blob)], check=True,
                               capture_output=True).stdout
        assert _sha256(plain) == diff_id
    assert _validate_layout_dir(dest) == 1
    # skopeo reads the layout and copies the image out of it
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{dest}", f"dir:{tmp_path / 'copy'}"],
                   check=True, capture_output=True)


def test_uncompressed_layers_are_their_diff_ids(store: Store, two_layer_result: BuildResult,
                                               tmp_path: Path) -> None:
    dest = tmp_path / "plain"
    _, manifest = _export_oci(two_layer_result, store, dest, "compression=uncompressed")
    assert [x["mediaType"] for x in manifest["layers"]] == [mediatypes.OCI_LAYER] * 2
    assert [x["digest"] for x in manifest["layers"]] == list(two_layer_result.config.diff_ids)
    assert _validate_layout_dir(dest) == 1


def test_gzip_is_the_default_and_compression_level_changes_the_bytes(
        store: Store, two_layer_result: BuildResult, tmp_path: Path) -> None:
    def layers(name: str, keys: str) -> list[dict]:
        return _export_oci(two_layer_result, store, tmp_path / name, keys)[1]["layers"]

    default = layers("default", "")
    assert [x["mediaType"] for x in default] == [mediatypes.OCI_LAYER_GZIP] * 2
    assert [x["digest"] for x in layers("gzip", "compression=gzip")] == \
        [x["digest"] for x in default]  # the layers as the build made them
    best = layers("gzip9", "compression-level=9")
    fastest = layers("gzip0", "compression=gzip,compression-level=0")
    zstd_default = layers("zstd", "compression=zstd")
    zstd_best = layers("zstd19", "compression=zstd,compression-level=19")
    for name, other in (("gzip9", best), ("gzip0", fastest), ("zstd19", zstd_best)):
        assert {x["digest"] for x in other}.isdisjoint(x["digest"] for x in default)
        for layer, diff_id in zip(other, two_layer_result.config.diff_ids, strict=True):
            data = _blob(tmp_path / name, layer["digest"])
            plain = (zstandard.ZstdDecompressor().stream_reader(data).read()
                     if name.startswith("zstd") else subprocess.run(
                         ["gzip", "-d", "-c"], input=data, check=True,
                         capture_output=True).stdout)
            assert _sha256(plain) == diff_id
    assert {x["digest"] for x in zstd_best}.isdisjoint(x["digest"] for x in zstd_default)
    assert sum(x["size"] for x in fastest) > sum(x["size"] for x in best)  # level 0: stored
    # a conversion is remembered: the same export again compresses nothing new
    before = sorted(store.layout.blobs())
    assert layers("gzip9-again", "compression-level=9") == best
    assert sorted(store.layout.blobs()) == before


def test_force_compression_converts_base_image_layers(store: Store,
                                                     two_layer_result: BuildResult,
                                                     tmp_path: Path) -> None:
    # the first layer stands for the base image's (gzip), the second is the build's own
    result = dataclasses.replace(two_layer_result, base_layers=1)
    _, kept = _export_oci(result, store, tmp_path / "kept", "compression=zstd")
    assert [x["mediaType"] for x in kept["layers"]] == [mediatypes.OCI_LAYER_GZIP,
                                                        mediatypes.OCI_LAYER_ZSTD]
    assert kept["layers"][0]["digest"] == result.layers[0].descriptor.digest
    _, forced = _export_oci(result, store, tmp_path / "forced",
                            "compression=zstd,force-compression=true")
    assert [x["mediaType"] for x in forced["layers"]] == [mediatypes.OCI_LAYER_ZSTD] * 2
    base = _blob(tmp_path / "forced", forced["layers"][0]["digest"])
    assert _sha256(zstandard.ZstdDecompressor().stream_reader(base).read()) == \
        result.config.diff_ids[0]
    # an empty value means true, as in BuildKit
    _, bare = _export_oci(result, store, tmp_path / "bare", "compression=zstd,force-compression=")
    assert bare["layers"] == forced["layers"]
    _, off = _export_oci(result, store, tmp_path / "off", "compression=zstd,force-compression=0")
    assert off["layers"] == kept["layers"]


def test_oci_mediatypes_false_gives_docker_media_types(
        store: Store, two_layer_result: BuildResult, tmp_path: Path) -> None:
    dest = tmp_path / "docker-types"
    _, manifest = _export_oci(two_layer_result, store, dest,
                              "oci-mediatypes=false,annotation.org.example.kept=yes",
                              tags=["app:1"])
    assert manifest["mediaType"] == mediatypes.DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == mediatypes.DOCKER_CONFIG
    assert [x["mediaType"] for x in manifest["layers"]] == [mediatypes.DOCKER_LAYER_GZIP] * 2
    assert manifest["annotations"] == {"org.example.kept": "yes"}  # BuildKit allows these
    # (skopeo reads such images from a registry: tests/registry/test_output_keys_push.py;
    # its oci: transport takes OCI manifests only)
    # uncompressed and zstd layers get the Docker types BuildKit (containerd) names
    _, plain = _export_oci(two_layer_result, store, tmp_path / "docker-plain",
                           "oci-mediatypes=false,compression=uncompressed")
    assert {x["mediaType"] for x in plain["layers"]} == {mediatypes.DOCKER_LAYER}
    _, zstd = _export_oci(two_layer_result, store, tmp_path / "docker-zstd",
                          "oci-mediatypes=false,compression=zstd")
    assert {x["mediaType"] for x in zstd["layers"]} == {mediatypes.DOCKER_LAYER_ZSTD}
    # the same for the store
    report = export(two_layer_result, [parse_output("type=store,oci-mediatypes=false")], store,
                    tags=["docker-typed"])
    image = store.resolve_image("docker-typed")
    assert image is not None and image.manifest.media_type == mediatypes.DOCKER_MANIFEST
    assert report.manifest.media_type == mediatypes.DOCKER_MANIFEST


def test_annotation_keys_land_in_the_manifest_and_index_json(
        store: Store, two_layer_result: BuildResult, tmp_path: Path) -> None:
    dest = tmp_path / "annotated"
    keys = ("annotation.org.opencontainers.image.title=plain,"
            "annotation-manifest.org.example.m=manifest,"
            f"annotation-manifest[{PLATFORM}].org.example.p=for-this-platform,"
            "annotation-manifest-descriptor.org.example.d=descriptor")
    desc, manifest = _export_oci(two_layer_result, store, dest, keys, tags=["app:1"])
    assert manifest["annotations"] == {"org.opencontainers.image.title": "plain",
                                       "org.example.m": "manifest",
                                       "org.example.p": "for-this-platform"}
    assert desc["annotations"]["org.example.d"] == "descriptor"
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "1"
    assert "org.example.d" not in manifest["annotations"]
    assert _validate_layout_dir(dest) == 1
    umoci = subprocess.run(["umoci", "stat", "--image", f"{dest}:1", "--json"],
                           capture_output=True, text=True)
    assert umoci.returncode == 0, umoci.stderr


def test_annotation_flag_forms_reach_every_image_output(
        store: Store, two_layer_result: BuildResult, tmp_path: Path) -> None:
    flags = parse_annotations(["org.example.a=default-is-manifest",
                               "manifest:org.example.b=manifest",
                               f"manifest[{PLATFORM}]:org.example.c=platform",
                               "manifest-descriptor:org.example.d=descriptor",
                               "manifest,manifest-descriptor:org.example.e=both",
                               "org.example.both=from-the-flag"])
    dest = tmp_path / "flags"
    report = export(two_layer_result,
                    [parse_output(f"type=oci,dest={dest},annotation.org.example.both=from-o"),
                     parse_output("type=store")], store, tags=["flagged"], annotations=flags)
    desc, manifest = _manifest(dest)
    assert manifest["annotations"] == {"org.example.a": "default-is-manifest",
                                       "org.example.b": "manifest",
                                       "org.example.c": "platform",
                                       "org.example.e": "both",
                                       "org.example.both": "from-o"}  # -o wins
    assert desc["annotations"]["org.example.d"] == "descriptor"
    assert desc["annotations"]["org.example.e"] == "both"
    image = store.resolve_image("flagged")
    assert image is not None and image.manifest.annotations["org.example.both"] == \
        "from-the-flag"
    assert report.manifest.annotations["org.example.d"] == "descriptor"


@pytest.mark.parametrize(("flag", "message"), [
    ("index:org.example.i=x", "index annotations need a multi-platform image"),
    ("index-descriptor:org.example.i=x", "index annotations need a multi-platform image"),
    ("manifest[windows/arm64]:org.example.i=x", "is for platform windows/arm64"),
])
def test_annotations_a_single_platform_image_cannot_hold(
        store: Store, two_layer_result: BuildResult, flag: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        export(two_layer_result, [], store, annotations=parse_annotations([flag]))
    # outputs that hold no manifest take no annotations, so none is refused there
    export(two_layer_result, [parse_output(f"type=local,dest={store.root / 'fs'}")], store,
           annotations=parse_annotations([flag]))


def test_annotation_parse_errors() -> None:
    for bad, message in [("novalue", "expected KEY=VALUE"), ("bogus:k=v", "unknown annotation"),
                         ("manifest[linux]:k=v", "invalid platform"),
                         ("Manifest:k=v", "is not TYPE or TYPE")]:
        with pytest.raises(UsageError, match=message):
            parse_annotations([bad])
    for bad, message in [("type=oci,dest=o,annotation-bogus.k=v", "unknown annotation type"),
                         ("type=oci,dest=o,annotation[linux/amd64]k=v", "cannot parse")]:
        with pytest.raises(UsageError, match=message):
            parse_output(bad)


def test_annotations_refused_with_docker_media_types(store: Store,
                                                    two_layer_result: BuildResult) -> None:
    spec = parse_output("type=image,oci-mediatypes=false,annotation-manifest-descriptor.k=v")
    with pytest.raises(UsageError, match="cannot be written with oci-mediatypes=false"):
        export(two_layer_result, [spec], store)


def test_tar_key_chooses_directory_or_archive(store: Store, two_layer_result: BuildResult,
                                             tmp_path: Path) -> None:
    as_dir = tmp_path / "layout.tar"  # tar=false wins over the name
    export(two_layer_result, [parse_output(f"type=oci,dest={as_dir},tar=false")], store,
           tags=["app:1"])
    assert (as_dir / "oci-layout").is_file()
    umoci = subprocess.run(["umoci", "ls", "--layout", str(as_dir)], capture_output=True,
                           text=True)
    assert umoci.returncode == 0 and umoci.stdout.split() == ["1"], umoci.stderr
    as_tar = tmp_path / "layout"  # tar=true wins over the missing .tar
    export(two_layer_result, [parse_output(f"type=oci,dest={as_tar},tar=true")], store,
           tags=["app:1"])
    with tarfile.open(as_tar) as tar:
        assert "index.json" in tar.getnames()
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{as_tar}:1"],
                                     check=True, capture_output=True, text=True).stdout)
    assert len(info["Layers"]) == 2


def test_name_key_names_the_image_in_each_output(store: Store, two_layer_result: BuildResult,
                                                 tmp_path: Path) -> None:
    dest = tmp_path / "named"
    report = export(two_layer_result,
                    [parse_output(f'type=oci,dest={dest},"name=reg.example/a:1,b:2"'),
                     parse_output("type=image,name=reg.example/c:3,push=false")], store)
    entries = json.loads((dest / "index.json").read_text())["manifests"]
    assert {(e["annotations"]["org.opencontainers.image.ref.name"],
             e["annotations"]["io.containerd.image.name"]) for e in entries} == {
        ("1", "reg.example/a:1"), ("2", "docker.io/library/b:2")}
    assert store.resolve_image("reg.example/c:3") is not None
    assert report.pushes == ()  # push=false


def test_push_key_pushes_the_image_that_output_describes(store: Store,
                                                         two_layer_result: BuildResult) -> None:
    def pushed(outputs: list[str], push: bool) -> dict[tuple[str, ...], set[str]]:
        """names pushed -> the media types of the layers pushed to them"""
        report = export(two_layer_result, [parse_output(o) for o in outputs], store,
                        tags=["t:1"], push=push)
        return {names: {x["mediaType"] for x in
                        json.loads(store.layout.read_blob(desc.digest))["layers"]}
                for desc, names in report.pushes}

    assert pushed(["type=registry,name=reg.example/z:1,compression=zstd",
                   "type=image,name=reg.example/g:1,push=1",
                   "type=image,name=reg.example/not:1"], push=False) == {
        ("reg.example/z:1",): {mediatypes.OCI_LAYER_ZSTD},
        ("reg.example/g:1",): {mediatypes.OCI_LAYER_GZIP}}
    # --push, as in buildx: every type=image output is pushed (named by the tags when
    # it names no image itself), or the tags are when there is none
    assert pushed(["type=image,compression=zstd"], push=True) == {
        ("docker.io/library/t:1",): {mediatypes.OCI_LAYER_ZSTD}}
    assert pushed([f"type=oci,dest={store.root / 'o'},compression=uncompressed"],
                  push=True) == {("docker.io/library/t:1",): {mediatypes.OCI_LAYER_GZIP}}


@pytest.mark.parametrize(("text", "message"), [
    ("type=oci,dest=o,colour=red", "unknown key 'colour' for type=oci \\(known: dest, tar, "
                                   "name, compression, compression-level, force-compression"),
    ("type=local,dest=o,compression=zstd", "unknown key 'compression' for type=local "
                                           "\\(known: dest\\)"),
    ("type=docker,dest=o,oci-mediatypes=true", "'oci-mediatypes' cannot apply to it"),
    ("type=docker,dest=o,annotation.k=v", "docker-archive \\(uncompressed layers, no image"),
    ("type=docker,dest=o,unpack=true", "unknown key 'unpack' for type=docker \\(known: dest, "
                                       "name, tar\\)"),
    ("type=image,unpack=true", "unknown key 'unpack' for type=image"),
    ("type=oci,dest=o,compression=estargz", "compression='estargz' is not supported"),
    ("type=oci,dest=o,compression=gzip,compression-level=10", "out of range for gzip \\(0..9\\)"),
    ("type=oci,dest=o,compression=zstd,compression-level=23", "out of range for zstd"),
    ("type=oci,dest=o,compression=zstd,compression-level=high", "not an integer"),
    ("type=oci,dest=o,compression=uncompressed,compression-level=1", "does not apply"),
    ("type=oci,dest=o,force-compression=maybe", "is not a boolean"),
    ("type=oci,dest=o,oci-mediatypes=", "is not a boolean"),
    ("type=oci,dest=o,tar=yes", "is not a boolean"),
    ("type=image,push=nope", "is not a boolean"),
    ("type=docker,dest=o,tar=false", "docker-archive tar only"),
    ("type=image,\"name=ok:1,Not Valid\"", "name=: invalid image name 'Not Valid'"),
])
def test_bad_keys_and_values_are_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_output(text)
