"""`--context-modes=git`: one commit cloned under umask 002 on one machine and 022 on
another shares the registry cache, every step and the image digest; without it (as
BuildKit) the group-writable clone misses every COPY."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remotecache.conftest import SDE, Builder, give_to, image_digest, step_states
from tests.support.registry_server import RegistryServer
from tests.support.users import User

DOCKERFILE = """\
FROM busybox:latest
COPY app.conf /etc/app.conf
COPY src/ /src/
COPY --chmod=600 secret.conf /etc/secret.conf
COPY bin/run.sh /usr/local/bin/run.sh
RUN --mount=type=bind,source=src,target=/mnt/src \\
    stat -c 'mode %a %n' /etc/app.conf /etc/secret.conf /src /src/a.txt /src/sub \\
    /usr/local/bin/run.sh /mnt/src /mnt/src/a.txt && /usr/local/bin/run.sh > /ran
"""

FILES = {
    "Dockerfile": DOCKERFILE,
    "app.conf": "setting=1\n",
    "secret.conf": "token=1\n",
    "src/a.txt": "alpha\n",
    "src/sub/b.txt": "beta\n",
    "bin/run.sh": "#!/bin/sh\necho ran\n",
}

GIT = ["git", "-c", "init.defaultBranch=main", "-c", "user.name=ci", "-c",
       "user.email=ci@example.org", "-c", "advice.detachedHead=false"]


def _sh(user: User, script: str, cwd: Path) -> None:
    proc = user.run(["sh", "-c", script], cwd=cwd, env={"GIT_CONFIG_NOSYSTEM": "1"})
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def clones(sub_user: User, sub_tmp: Path) -> Iterator[tuple[Path, Path]]:
    """One commit, cloned by the user under umask 002 and under umask 022."""
    origin = sub_tmp / "origin"
    for rel, content in FILES.items():
        (origin / rel).parent.mkdir(parents=True, exist_ok=True)
        (origin / rel).write_text(content)
    (origin / "bin" / "run.sh").chmod(0o755)
    give_to(origin, sub_user)
    git = " ".join(GIT)
    _sh(sub_user, f"{git} init -q . && {git} add -A && {git} commit -q -m one", origin)
    for umask, name in (("002", "loose"), ("022", "strict")):
        _sh(sub_user, f"umask {umask}; {git} clone -q {origin} {name}", sub_tmp)
    yield sub_tmp / "loose", sub_tmp / "strict"


@pytest.fixture
def builder(sub_user: User, sub_tmp: Path, busybox_store_template: Path) -> Builder:
    b = Builder(sub_user, sub_tmp, sub_tmp / "store")
    b.root = b.new_store(busybox_store_template, "store")
    return b


def _modes(log: str) -> dict[str, str]:
    """Path -> octal mode, from the RUN's `stat` lines."""
    return dict(reversed(m.groups()) for m in re.finditer(r" mode (\d+) (\S+)", log))


def _build(builder: Builder, store: Path, context: Path, *args: str) -> tuple[str, dict]:
    proc, _ = builder.build(context, *args, env=SDE, store=store)
    return proc.stderr, step_states(proc.stderr)


def test_git_modes_share_the_cache_between_umasks(
        clones: tuple[Path, Path], builder: Builder, registry: RegistryServer,
        busybox_store_template: Path) -> None:
    loose, strict = clones
    assert (loose / "app.conf").stat().st_mode & 0o777 == 0o664
    assert (strict / "app.conf").stat().st_mode & 0o777 == 0o644
    ref = f"{registry.host}/ci/context-modes"

    # as BuildKit: the clone with group-writable files caches steps the other misses
    log_a, _ = _build(builder, builder.root, loose,
                      "--cache-to", f"type=registry,ref={ref}:keep,mode=max")
    assert _modes(log_a)["/etc/app.conf"] == "664"
    fresh = builder.new_store(busybox_store_template, "store-keep")
    log_b, states = _build(builder, fresh, strict, "--cache-from", f"type=registry,ref={ref}:keep")
    copies = {s: v for s, v in states.items() if "] COPY " in s}
    assert len(copies) == 4 and set(copies.values()) == {"DONE"}, log_b
    assert image_digest(log_b) != image_digest(log_a)

    # with --context-modes=git: every step of the other clone comes from the cache
    log_a, _ = _build(builder, builder.root, loose, "--context-modes=git",
                      "--cache-to", f"type=registry,ref={ref}:git,mode=max")
    assert _modes(log_a) == {
        "/etc/app.conf": "644", "/etc/secret.conf": "600", "/src": "755",
        "/src/a.txt": "644", "/src/sub": "755", "/usr/local/bin/run.sh": "755",
        "/mnt/src": "755", "/mnt/src/a.txt": "644"}, log_a
    assert (loose / "app.conf").stat().st_mode & 0o777 == 0o664  # the clone untouched
    fresh = builder.new_store(busybox_store_template, "store-git")
    log_b, states = _build(builder, fresh, strict, "--context-modes=git",
                           "--cache-from", f"type=registry,ref={ref}:git")
    assert len(states) == 6 and set(states.values()) == {"CACHED"}, log_b
    assert image_digest(log_b) == image_digest(log_a)
