"""`build --load`: the image goes into the docker daemon at DOCKER_HOST, named by -t, as
buildx's --load; with no daemon there, a clear error (the image is in the store)."""

from __future__ import annotations

from tests.build.conftest import Builder, copy_fixture, write_context
from tests.support.dockerd import Dockerd
from tests.support.paths import OCIBUILD


def test_load_puts_the_image_into_the_daemon_under_its_names(
        builder: Builder, dockerd: Dockerd) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    proc, _ = builder.build("--load", "-t", "some/name:tag", "-t", "other:1", ctx,
                            env={"DOCKER_HOST": dockerd.host})
    image_id = proc.stdout.strip()
    assert image_id.startswith("sha256:")
    assert "loaded some/name:tag into the docker daemon" in proc.stderr
    for name in ("some/name:tag", "other:1"):
        inspected = dockerd.docker("image", "inspect", "--format", "{{.Id}}", name)
        assert inspected.stdout.strip() == image_id
    run = dockerd.docker("run", "--rm", "--network", "none", "some/name:tag")
    assert run.stdout == "a\nb\n"


def test_load_without_a_daemon_says_where_it_looked(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": "FROM busybox:latest\n"
                                              "LABEL built=yes\n"}, builder.user)
    missing = builder.tmp / "no-daemon.sock"
    proc, _ = builder.build("--load", "-t", "kept:1", ctx, check=False,
                            env={"DOCKER_HOST": f"unix://{missing}"})
    assert proc.returncode == 1, proc.stderr
    assert f"unix://{missing}" in proc.stderr
    assert "local store" in proc.stderr
    assert "Traceback" not in proc.stderr
    images = builder.user.run([OCIBUILD, "--root", builder.root, "images"], check=True)
    assert "kept" in images.stdout


def test_load_refuses_an_unsupported_docker_host(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": "FROM busybox:latest\n"},
                        builder.user)
    proc, _ = builder.build("--load", "-t", "early:1", ctx, check=False,
                            env={"DOCKER_HOST": "ssh://user@example.invalid"})
    assert proc.returncode == 2, proc.stderr
    assert "ssh://user@example.invalid" in proc.stderr and "unix://" in proc.stderr
    images = builder.user.run([OCIBUILD, "--root", builder.root, "images"], check=True)
    assert "early" not in images.stdout  # refused before the build
