"""Multi-platform builds as a CI job runs them (`--platform linux/amd64,linux/arm64
--push`), by the unprivileged user: one image index, the arm64 steps under QEMU
through binfmt_misc, the build stage of a cross-compiling Dockerfile run once, and
the error a machine without a handler gives before any step."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.build.conftest import Builder, copy_fixture, give_to, image_digest, step_states
from tests.support.paths import OCIBUILD
from tests.support.platforms import arm64_unavailable, make_arm64_rootfs
from tests.support.registry_server import RegistryServer
from tests.support.users import User, remove_tree

pytestmark = pytest.mark.skipif((why := arm64_unavailable()) is not None, reason=why or "")

PLATFORMS = "linux/amd64,linux/arm64"


@pytest.fixture(scope="module")
def mp_template(busybox_rootfs: Path) -> Iterator[Path]:
    """A store with busybox-amd64 (this machine's busybox) and busybox-arm64 (Debian's
    arm64 busybox-static), imported offline."""
    base = Path(tempfile.mkdtemp(prefix="ocib-mp-", dir="/tmp"))
    os.chmod(base, 0o755)
    template = base / "store"
    arm64 = make_arm64_rootfs(base / "rootfs-arm64")
    for source, name, platform in ((busybox_rootfs, "busybox-amd64", "linux/amd64"),
                                   (arm64, "busybox-arm64", "linux/arm64")):
        subprocess.run([OCIBUILD, "--root", template, "import", "--platform", platform,
                        source, "--tag", name], check=True, capture_output=True)
    yield template
    remove_tree(base)


@pytest.fixture(scope="module")
def mp_builder(sub_user: User, mp_template: Path) -> Iterator[Builder]:
    """The user's builder, with a copy of the template store."""
    tmp = sub_user.make_tempdir()
    builder = Builder(sub_user, tmp, tmp / "store")
    builder.root = builder.new_store(mp_template, "store")
    yield builder
    remove_tree(tmp)


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    server = RegistryServer.start("http")
    yield server
    server.stop()


def _file_in_image(layout: Path, path: str) -> str:
    """`path` from the top layer of the only image in an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    blob = layout / "blobs/sha256"
    manifest = json.loads((blob / index["manifests"][0]["digest"][7:]).read_text())
    with tarfile.open(blob / manifest["layers"][-1]["digest"][7:]) as tar:
        member = tar.extractfile(path)
        assert member is not None
        return member.read().decode()


@dataclass(frozen=True)
class Pushed:
    ref: str
    digest: str  # the index's
    context: Path


@pytest.fixture(scope="module")
def pushed(mp_builder: Builder, registry: RegistryServer) -> Pushed:
    """fixtures/multiplatform/arch built for two platforms and pushed."""
    context = copy_fixture("multiplatform/arch", mp_builder.tmp / "arch", mp_builder.user)
    ref = f"{registry.host}/mp/arch:1"
    meta = mp_builder.tmp / "meta.json"
    first, _ = mp_builder.build("--platform", PLATFORMS, "-t", ref, "--push",
                                "--metadata-file", meta, "--cache-to",
                                f"type=registry,ref={registry.host}/mp/arch:cache", context)
    digest = image_digest(first.stderr)
    assert json.loads(meta.read_text())["containerimage.digest"] == digest
    return Pushed(ref, digest, context)


def test_the_pushed_index_has_each_platforms_image(mp_builder: Builder,
                                                   pushed: Pushed) -> None:
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{pushed.ref}"], check=True, capture_output=True).stdout
    index = json.loads(raw)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed.digest
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}]
    for arch, expected in (("amd64", "x86_64 amd64\n"), ("arm64", "aarch64 arm64\n")):
        out = mp_builder.tmp / f"copy-{arch}"
        subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                        "--override-arch", arch, f"docker://{pushed.ref}", f"oci:{out}"],
                       check=True, capture_output=True)
        assert _file_in_image(out, "arch.txt") == expected


def test_a_cached_rebuild_makes_the_same_index(mp_builder: Builder, pushed: Pushed) -> None:
    again, _ = mp_builder.build("--platform", PLATFORMS, "-t", pushed.ref, "--push",
                                pushed.context)
    states = step_states(again.stderr)
    assert len(states) == 4
    assert set(states.values()) == {"CACHED"}
    assert image_digest(again.stderr) == pushed.digest


def test_each_platform_gets_its_own_attestations(mp_builder: Builder, pushed: Pushed,
                                                 registry: RegistryServer) -> None:
    """As BuildKit: the index lists the images, then one attestation manifest per image,
    whose statements name that image's digest (the steps are cached: only the
    attestations are new)."""
    ref = f"{registry.host}/mp/arch:attested"
    mp_builder.build("--platform", PLATFORMS, "-t", ref, "--push", "--sbom=true",
                     "--provenance=mode=max", pushed.context)
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{ref}"], check=True, capture_output=True).stdout
    entries = json.loads(raw)["manifests"]
    images, attached = entries[:2], entries[2:]
    assert [m["platform"]["architecture"] for m in images] == ["amd64", "arm64"]
    assert [m["annotations"]["vnd.docker.reference.digest"] for m in attached] == [
        m["digest"] for m in images]
    assert {m["platform"]["os"] for m in attached} == {"unknown"}
    pushed_index = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{pushed.ref}"],
        check=True, capture_output=True).stdout)
    assert [m["digest"] for m in images] == [m["digest"] for m in pushed_index["manifests"]]
    for image, manifest in zip(images, attached, strict=True):
        doc = json.loads(subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false",
             f"docker://{ref.rsplit(':', 1)[0]}@{manifest['digest']}"],
            check=True, capture_output=True).stdout)
        kinds = [layer["annotations"]["in-toto.io/predicate-type"] for layer in doc["layers"]]
        assert kinds == ["https://spdx.dev/Document", "https://slsa.dev/provenance/v1"]
        assert doc["subject"]["digest"] == image["digest"]


def test_the_api_takes_a_sequence_of_platforms(mp_builder: Builder, pushed: Pushed) -> None:
    report = mp_builder.api(pushed.context, platform=["linux/amd64", "linux/arm64"])
    assert report["manifest"] == pushed.digest
    assert report["cached"] == report["steps"] == 4


def test_another_machine_rebuilds_it_from_the_registry_cache(
        mp_builder: Builder, mp_template: Path, pushed: Pushed) -> None:
    """Every platform's steps come from the one cache --cache-to wrote."""
    store = mp_builder.new_store(mp_template, "other-machine")
    cache = pushed.ref.replace(":1", ":cache")
    proc, _ = mp_builder.build("--platform", PLATFORMS, "-t", "arch",
                               "--cache-from", f"type=registry,ref={cache}", pushed.context,
                               store=store)
    states = step_states(proc.stderr)
    assert [s for s in states.values() if s != "CACHED"] == []
    assert image_digest(proc.stderr) == pushed.digest


def test_a_registry_index_is_a_base_per_platform(mp_builder: Builder, pushed: Pushed) -> None:
    """pull --all-platforms keeps the index (push, save and load keep it whole); a build
    FROM it takes each platform's image."""
    store = mp_builder.tmp / "pulled-store"
    pull = mp_builder.user.run([OCIBUILD, "--root", store, "pull", "--all-platforms",
                                pushed.ref])
    assert pull.returncode == 0, pull.stderr
    assert pushed.digest in pull.stdout
    shown = mp_builder.user.run([OCIBUILD, "--root", store, "inspect", "--platform",
                                 "linux/arm64", pushed.ref], check=True).stdout
    assert "Index:      linux/amd64, linux/arm64" in shown
    assert "Platform:   linux/arm64" in shown
    listed = mp_builder.user.run([OCIBUILD, "--root", store, "images", "--format",
                                  "{{.Tag}} {{.Platforms}}"], check=True).stdout
    assert listed == "1 linux/amd64,linux/arm64\n"
    copied = pushed.ref.replace("/mp/arch:1", "/mp/copied:1")
    again = mp_builder.user.run([OCIBUILD, "--root", store, "push", pushed.ref, copied])
    assert f"pushed {copied}@{pushed.digest}" in again.stdout, again.stderr
    archive, other = mp_builder.tmp / "arch.oci.tar", mp_builder.tmp / "loaded-store"
    mp_builder.user.run([OCIBUILD, "--root", store, "save", "--format", "oci-archive",
                         "-o", archive, pushed.ref], check=True)
    mp_builder.user.run([OCIBUILD, "--root", other, "load", "-i", archive], check=True)
    assert mp_builder.user.run([OCIBUILD, "--root", other, "images", "--format",
                                "{{.Tag}} {{.Platforms}}"], check=True).stdout == listed
    context = mp_builder.tmp / "from-index"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {pushed.ref}\nRUN cat /arch.txt > /base.txt\n")
    give_to(context, mp_builder.user)
    out = mp_builder.tmp / "from-index-out"
    mp_builder.build("--platform", PLATFORMS, "-o", f"type=local,dest={out}", context)
    assert (out / "linux_arm64/base.txt").read_text() == "aarch64 arm64\n"
    assert (out / "linux_amd64/base.txt").read_text() == "x86_64 amd64\n"


def test_cross_compile_runs_its_build_stage_once(mp_builder: Builder) -> None:
    context = copy_fixture("multiplatform/cross", mp_builder.tmp / "cross", mp_builder.user)
    out, layout = mp_builder.tmp / "cross-out", mp_builder.tmp / "cross.oci"
    proc, _ = mp_builder.build("--platform", PLATFORMS, "-o", f"type=local,dest={out}",
                               "-o", f"type=oci,dest={layout}",
                               "--annotation", "index:org.example.kind=tool",
                               "--annotation", "manifest[linux/arm64]:org.example.cpu=arm",
                               context)
    build_steps = [name for name in step_states(proc.stderr) if " build 2/2] RUN" in name]
    assert build_steps == ['[linux/amd64 build 2/2] RUN echo "built on $(uname -m)" '
                           "> /tool.txt"]
    assert sorted(os.listdir(out)) == ["linux_amd64", "linux_arm64"]
    assert (out / "linux_arm64/out.txt").read_text() == "built on x86_64\naarch64\n"
    assert (out / "linux_amd64/out.txt").read_text() == "built on x86_64\nx86_64\n"
    # the annotations: the index's in the index, a platform's in its manifest only
    blobs = layout / "blobs/sha256"
    entry = json.loads((layout / "index.json").read_text())["manifests"][0]
    index = json.loads((blobs / entry["digest"][7:]).read_text())
    assert index["annotations"] == {"org.example.kind": "tool"}
    manifests = {m["platform"]["architecture"]: json.loads((blobs / m["digest"][7:]).read_text())
                 for m in index["manifests"]}
    assert manifests["arm64"]["annotations"] == {"org.example.cpu": "arm"}
    assert "annotations" not in manifests["amd64"]


def test_no_handler_is_an_error_before_any_step(mp_builder: Builder, pushed: Pushed) -> None:
    """In a user namespace with its own (empty) binfmt_misc, as kernel 6.7 allows: the
    cached build needs no handler; the same build with --no-cache fails at once."""
    probe = mp_builder.user.run(["unshare", "-Urm", "mount", "-t", "binfmt_misc",
                                 "binfmt_misc", "/proc/sys/fs/binfmt_misc"])
    if probe.returncode != 0:
        pytest.skip(f"no private binfmt_misc here (kernel 6.7+): {probe.stderr.strip()}")
    script = ('mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && exec "$@"')

    def build(*flags: str) -> subprocess.CompletedProcess[str]:
        return mp_builder.user.run(
            ["unshare", "-Urm", "sh", "-c", script, "sh", OCIBUILD, "--root",
             mp_builder.root, "build", "--progress", "plain", *flags, "--platform",
             PLATFORMS, pushed.context], cwd=mp_builder.tmp)

    cached = build()
    assert cached.returncode == 0, cached.stderr
    assert image_digest(cached.stderr) == pushed.digest
    proc = build("--no-cache")
    assert proc.returncode == 1
    assert ("linux/arm64: no binfmt_misc handler here runs this platform's programs"
            in proc.stderr)
    assert "update-binfmts --enable qemu-aarch64" in proc.stderr
    assert "#" not in proc.stderr  # no step was even shown
    assert "Traceback" not in proc.stderr
