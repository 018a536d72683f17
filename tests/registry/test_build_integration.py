"""`ocibuild build` with registries, as the unprivileged user: FROM a registry image in
each set-up (plain http, TLS with the tests' CA, htpasswd, bearer tokens), `--push` of
the result read back by skopeo; an air-gapped build FROM an OCI layout inside a network
namespace; `--build-context` images and directories; `--pull` and the base image's
digest in the cache key; errors that name the reference and the HTTP status."""

from __future__ import annotations

import base64
import compileall
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ocibuild.registry import RegistryOptions, push_names
from tests.build import imagefs
from tests.build.conftest import give_to, image_digest, step_states, write_context
from tests.registry.conftest import BaseImages, skopeo_src_flags
from tests.support.paths import OCIBUILD, REPO
from tests.support.registry_server import PASSWORD, USER, Proxy, RegistryServer
from tests.support.users import User

SETUPS = ["http_registry", "tls_registry", "htpasswd_registry", "token_registry"]


@pytest.fixture(scope="module", autouse=True)
def _compiled_package() -> None:
    """The user cannot write __pycache__ in the tree: compile once, as an install would."""
    compileall.compile_dir(REPO / "ocibuild", quiet=1)


def build(user: User, tmp: Path, *args: str | Path, check: bool = True
          ) -> subprocess.CompletedProcess[str]:
    proc = user.run([OCIBUILD, "--root", tmp / "store", "build", "--progress", "plain",
                     *args], cwd=tmp, timeout=120)
    if check:
        assert proc.returncode == 0, f"build failed ({proc.returncode}):\n{proc.stderr}"
    return proc


def user_flags(server: RegistryServer, tmp: Path, user: User) -> list[str]:
    """The CA and credentials the user's build needs for this registry (files it owns)."""
    flags: list[str] = []
    if server.mode == "tls":
        assert server.certs is not None
        ca = tmp / "ca.crt"
        shutil.copy(server.certs.ca_cert, ca)
        give_to(ca, user)
        flags += ["--registry-ca", str(ca)]
    if server.mode in ("htpasswd", "token"):
        auth = tmp / "auth.json"
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        auth.write_text(json.dumps({"auths": {server.host: {"auth": token}}}))
        give_to(auth, user)
        flags += ["--authfile", str(auth)]
    return flags


def push_base(server: RegistryServer, images: BaseImages, ref: str, tmp: Path,
              tag: str = "latest") -> None:
    """Put an image of the test layout into the registry (as root, with the API)."""
    ca = [server.certs.ca_cert] if server.mode == "tls" and server.certs else []
    authfile = None
    if server.mode in ("htpasswd", "token"):
        authfile = tmp / "root-auth.json"
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        authfile.write_text(json.dumps({"auths": {server.host: {"auth": token}}}))
    desc = images.layout.resolve(tag)
    push_names(images.layout, desc, [ref],
               options=RegistryOptions.build(ca_files=ca, authfile=authfile))


def user_layout(images: BaseImages, tmp: Path, user: User) -> Path:
    """A copy of the test layout (busybox base "latest", derived "app") the user reads."""
    dest = tmp / "base-layout"
    shutil.copytree(images.path, dest)
    give_to(dest, user)
    return dest


def skopeo_copy(server: RegistryServer, ref: str, dest: Path, tmp: Path) -> imagefs.Image:
    subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests",
                    *skopeo_src_flags(server, tmp), f"docker://{ref}", f"oci:{dest}:pulled"],
                   check=True, capture_output=True, text=True, timeout=120)
    return imagefs.load(dest)


def base_layers(images: BaseImages, tag: str = "latest") -> list[str]:
    from ocibuild.oci.image import load_image

    return [d.digest for d in load_image(images.layout, tag).manifest.layers]


@pytest.mark.parametrize("setup", SETUPS)
def test_build_from_a_registry_image_then_push(setup: str, request: pytest.FixtureRequest,
                                               images: BaseImages, sub_user: User,
                                               sub_tmp: Path, tmp_path: Path) -> None:
    server: RegistryServer = request.getfixturevalue(setup)
    base_ref = f"{server.host}/bi-{server.mode}/busybox:1"
    app_ref = f"{server.host}/bi-{server.mode}/built:1"
    push_base(server, images, base_ref, tmp_path)
    ctx = write_context(sub_tmp / "ctx", {"Dockerfile": (
        f"FROM {base_ref}\nRUN echo built-on-{server.mode} > /built.txt\n")}, sub_user)

    proc = build(sub_user, sub_tmp, "-t", app_ref, "--push",
                 *user_flags(server, sub_tmp, sub_user), ctx)

    digest = image_digest(proc.stderr)
    assert f"pushed {app_ref}@{digest}" in proc.stderr
    pulled = skopeo_copy(server, app_ref, tmp_path / "back", tmp_path)
    assert pulled.manifest_digest == digest
    # the base came from the registry: its layer is under ours, its RUN really ran
    assert list(pulled.layer_digests[:-1]) == base_layers(images)
    assert pulled.files["built.txt"].data == f"built-on-{server.mode}\n".encode()
    assert pulled.config["config"]["Cmd"] == ["sh"]  # the base's config carried over



def test_a_cached_build_push_of_an_unchanged_image_asks_one_question(
        proxy: Proxy, sub_user: User, sub_tmp: Path) -> None:
    """The engine's second `build --push`: every step cached, the tag already names the
    image; after the ping (made while the build runs) one HEAD of the manifest, nothing
    else."""
    ref = f"{proxy.host}/bi-again/app:1"
    ctx = write_context(sub_tmp / "ctx", {"Dockerfile": "FROM scratch\nCOPY a /a\n",
                                          "a": "again\n"}, sub_user)
    flags = ["-t", ref, "--push", "--insecure-registry", proxy.host, ctx]
    first = image_digest(build(sub_user, sub_tmp, *flags).stderr)
    shutil.rmtree(sub_tmp / "store" / "rebuilds")  # the engine's own (test_push_memo: the memo's)
    proxy.reset()
    proc = build(sub_user, sub_tmp, *flags)
    assert image_digest(proc.stderr) == first
    assert f"pushed {ref}@{first}" in proc.stderr
    assert [(s.method, s.path) for s in proxy.seen] == [
        ("GET", "/v2/"), ("HEAD", "/v2/bi-again/app/manifests/1")]

def test_registry_errors_name_the_reference_and_status(htpasswd_registry: RegistryServer,
                                                       http_registry: RegistryServer,
                                                       images: BaseImages, sub_user: User,
                                                       sub_tmp: Path, tmp_path: Path) -> None:
    server = htpasswd_registry
    base_ref = f"{server.host}/bi-err/busybox:1"
    push_base(server, images, base_ref, tmp_path)
    layout = user_layout(images, sub_tmp, sub_user)

    # pulling without credentials
    ctx = write_context(sub_tmp / "pull", {"Dockerfile": f"FROM {base_ref}\n"}, sub_user)
    proc = build(sub_user, sub_tmp, ctx, check=False)
    assert proc.returncode != 0
    assert base_ref in proc.stderr and "401" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

    # pushing without credentials (the build itself needs no registry)
    target = f"{server.host}/bi-err/built:1"
    ctx = write_context(sub_tmp / "push", {"Dockerfile": (
        f"FROM oci-layout://{layout}:latest\nLABEL pushed=no\n")}, sub_user)
    proc = build(sub_user, sub_tmp, "-o", f"type=image,name={target},push=true", ctx,
                 check=False)
    assert proc.returncode != 0
    assert target in proc.stderr and "401" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

    # a tag the registry does not have
    missing = f"{http_registry.host}/bi-err/nothing:here"
    ctx = write_context(sub_tmp / "missing", {"Dockerfile": f"FROM {missing}\n"}, sub_user)
    proc = build(sub_user, sub_tmp, ctx, check=False)
    assert proc.returncode != 0
    assert missing in proc.stderr and "404" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

    # --push with nothing to push to fails before anything is built
    proc = build(sub_user, sub_tmp, "--push", ctx, check=False)
    assert proc.returncode != 0 and "-t" in proc.stderr and "Traceback" not in proc.stderr


def state_of(states: dict[str, str], text: str) -> str:
    """The state of the one step whose name contains `text`."""
    found = [state for name, state in states.items() if text in name]
    assert len(found) == 1, (text, states)
    return found[0]


def _offline(user: User, tmp: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`ocibuild build` as the user in a fresh network namespace: no interface but a
    loopback that is down, so no registry (not even one on 127.0.0.1) can be reached."""
    return subprocess.run(
        ["unshare", "--net", "--", "setpriv", f"--reuid={user.uid}", f"--regid={user.gid}",
         "--clear-groups", "--", str(OCIBUILD), "--root", str(tmp / "store"), "build",
         "--progress", "plain", *map(str, args)],
        capture_output=True, text=True, env=user.env(), cwd=tmp, timeout=120)


def test_air_gapped_build_from_an_oci_layout(images: BaseImages, http_registry: RegistryServer,
                                             sub_user: User, sub_tmp: Path) -> None:
    layout = user_layout(images, sub_tmp, sub_user)
    ctx = write_context(sub_tmp / "ctx", {
        "Dockerfile": f"FROM oci-layout://{layout}:latest\nCOPY note.txt /\n"
                      "RUN cat /note.txt > /offline.txt\n",
        "note.txt": "built without a network\n"}, sub_user)
    out = sub_tmp / "out"

    proc = _offline(sub_user, sub_tmp, "-o", f"type=oci,dest={out}", ctx)

    assert proc.returncode == 0, proc.stderr
    image = imagefs.load(out)
    assert image.files["offline.txt"].data == b"built without a network\n"
    assert list(image.layer_digests[:1]) == base_layers(images)

    # the control: in the same kind of namespace a registry base cannot be reached
    ref = f"{http_registry.host}/bi-offline/busybox:1"
    ctx2 = write_context(sub_tmp / "ctx2", {"Dockerfile": f"FROM {ref}\n"}, sub_user)
    proc = _offline(sub_user, sub_tmp, ctx2)
    assert proc.returncode != 0
    assert ref in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_build_contexts_from_a_layout_and_a_directory(images: BaseImages, sub_user: User,
                                                      sub_tmp: Path) -> None:
    layout = user_layout(images, sub_tmp, sub_user)
    files = write_context(sub_tmp / "files", {"greeting.txt": "hello from a context\n",
                                              "other.txt": "unrelated\n"}, sub_user)
    ctx = write_context(sub_tmp / "ctx", {"Dockerfile": (
        # the stage named like the context is replaced by it, as in BuildKit
        "FROM base AS files\nRUN echo from-the-stage > /greeting.txt\n"
        "FROM base\n"
        "COPY --from=files greeting.txt /copied.txt\n"
        "RUN --mount=from=files,target=/mnt cat /mnt/greeting.txt > /mounted.txt\n")},
        sub_user)
    out = sub_tmp / "out"
    args = ["--build-context", f"base=oci-layout://{layout}:latest",
            "--build-context", f"files={files}", "-o", f"type=oci,dest={out}", ctx]

    build(sub_user, sub_tmp, *args)
    image = imagefs.load(out)
    assert image.files["copied.txt"].data == b"hello from a context\n"
    assert image.files["mounted.txt"].data == b"hello from a context\n"
    assert list(image.layer_digests[:1]) == base_layers(images)

    # a file the COPY does not read changes: the COPY is cached, the RUN that mounts
    # the whole directory is not
    (files / "other.txt").write_text("changed\n")
    states = step_states(build(sub_user, sub_tmp, *args).stderr)
    assert state_of(states, "COPY --from=files") == "CACHED"
    assert state_of(states, "RUN --mount") == "DONE"

    # the file it copies changes: both run again and the image has the new content
    (files / "greeting.txt").write_text("edited\n")
    log = build(sub_user, sub_tmp, *args).stderr
    assert state_of(step_states(log), "COPY --from=files") == "DONE"
    image = imagefs.load(out, image_digest(log))
    assert image.files["copied.txt"].data == b"edited\n"
    assert image.files["mounted.txt"].data == b"edited\n"


def test_pull_and_the_base_digest_in_the_cache_key(http_registry: RegistryServer,
                                                   images: BaseImages, sub_user: User,
                                                   sub_tmp: Path, tmp_path: Path) -> None:
    """A docker-image:// build context names a registry image; moving its tag changes
    nothing until --pull, and then the steps above it run again (its manifest digest is
    part of their cache keys)."""
    ref = f"{http_registry.host}/bi-pull/base:moving"
    push_base(http_registry, images, ref, tmp_path)
    ctx = write_context(sub_tmp / "ctx", {"Dockerfile": (
        "FROM alias\nRUN ls / > /listing.txt\n")}, sub_user)
    out = sub_tmp / "out"
    args = ["--build-context", f"alias=docker-image://{ref}", "-o", f"type=oci,dest={out}",
            ctx]

    build(sub_user, sub_tmp, *args)
    assert b"app\n" not in imagefs.load(out).files["listing.txt"].data

    push_base(http_registry, images, ref, tmp_path, tag="app")  # the tag moves
    states = step_states(build(sub_user, sub_tmp, *args).stderr)
    assert state_of(states, "RUN ls") == "CACHED"  # the store's copy, as docker build does

    log = build(sub_user, sub_tmp, "--pull", *args).stderr
    assert state_of(step_states(log), "RUN ls") == "DONE"
    image = imagefs.load(out, image_digest(log))
    assert image.files["app/hello.txt"].data == b"hello from a derived image\n"
    assert b"app\n" in image.files["listing.txt"].data


def test_docker_archive_base_copy_from_a_registry_image_and_two_pushed_names(
        http_registry: RegistryServer, images: BaseImages, sub_user: User, sub_tmp: Path,
        tmp_path: Path) -> None:
    """FROM docker-archive://, COPY --from= a registry image (pulled), and an image output
    with two names pushed (`type=registry` is the same as `type=image,push=true`)."""
    archive = sub_tmp / "base.tar"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{images.path}:latest",
                    f"docker-archive:{archive}:busybox:1"], check=True, capture_output=True)
    give_to(archive, sub_user)
    app_ref = f"{http_registry.host}/bi-archive/app:1"
    push_base(http_registry, images, app_ref, tmp_path, tag="app")
    ctx = write_context(sub_tmp / "ctx", {"Dockerfile": (
        f"FROM docker-archive://{archive}\n"
        f"COPY --from={app_ref} /app/hello.txt /hello.txt\n")}, sub_user)
    first, second = (f"{http_registry.host}/bi-archive/out:{t}" for t in ("a", "b"))

    proc = build(sub_user, sub_tmp, "-o", f"type=registry,\"name={first},{second}\"", ctx)

    digest = image_digest(proc.stderr)
    for ref in (first, second):
        assert f"pushed {ref}@{digest}" in proc.stderr
        pulled = skopeo_copy(http_registry, ref, tmp_path / ref.rsplit(":", 1)[1], tmp_path)
        assert pulled.manifest_digest == digest
    assert pulled.files["hello.txt"].data == b"hello from a derived image\n"
    assert pulled.files["bin/busybox"].info.isfile()
