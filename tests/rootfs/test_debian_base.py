"""`ocibuild rootfs debian` makes a Debian base from a directory of .deb files with the
network cut, as an unprivileged user; builds FROM it install more packages from that
directory through a bind mount, offline; the air-gapped workflow runs end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.build.conftest import Builder, give_to, image_digest, step_states, write_context
from tests.rootfs.conftest import EXTRA_PACKAGE, SUITE, DebianBase
from tests.support.netns import network_namespace
from tests.support.paths import OCIBUILD
from tests.support.users import User

DOCKERFILE = f"""\
FROM debian
RUN --network=none --mount=type=bind,from=debs,target=/debs \\
    echo 'deb [trusted=yes] file:/debs ./' > /etc/apt/sources.list.d/debs.list && \\
    apt-get update && apt-get install -y --no-install-recommends {EXTRA_PACKAGE} && \\
    rm -rf /etc/apt/sources.list.d/debs.list /var/lib/apt/lists/*
RUN {EXTRA_PACKAGE} --greeting="made offline" > /greeting && cat /greeting
"""


def _config(user: User, ref: str) -> dict[str, object]:
    proc = user.run([OCIBUILD, "inspect", "--format", "json", ref], check=True)
    return json.loads(proc.stdout)["config"]


def test_the_base_is_debian_with_a_config_naming_how_it_was_made(
        sub_user: User, debian_base: DebianBase, debs_dir: Path) -> None:
    config = _config(sub_user, f"oci:{debian_base.layout}:{SUITE}")
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    exec_config = config["config"]
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in \
        exec_config["Env"]
    assert exec_config["Cmd"] == ["bash"]
    labels = exec_config["Labels"]
    assert labels["io.ocibuild.rootfs.debian.suite"] == SUITE
    assert labels["io.ocibuild.rootfs.debian.source"] == debs_dir.as_uri()
    # minbase: the Essential set and apt
    assert 50 < int(labels["io.ocibuild.rootfs.debian.packages"]) < 120
    assert config["created"] == "2023-11-14T22:13:20Z"  # SOURCE_DATE_EPOCH
    [history] = config["history"]
    assert history["created_by"].startswith("mmdebstrap --variant=minbase")


def test_source_date_epoch_gives_the_same_digest(debian_base: DebianBase,
                                                 debian_base_again: DebianBase) -> None:
    assert debian_base_again.layout != debian_base.layout
    assert debian_base_again.digest == debian_base.digest


def _app(tmp: Path, user: User) -> Path:
    return write_context(tmp / "app", {"Dockerfile": DOCKERFILE}, user)


def test_a_run_installs_from_the_package_directory_offline(
        builder: Builder, debian_base: DebianBase, debs_dir: Path) -> None:
    proc, _ = builder.build("--build-context", f"debian={debian_base.context}",
                            "--build-context", f"debs={debs_dir}",
                            _app(builder.tmp, builder.user))
    assert f"Setting up {EXTRA_PACKAGE}" in proc.stderr, proc.stderr[-3000:]
    assert "made offline" in proc.stderr


def test_air_gapped_workflow(builder: Builder, debian_base: DebianBase,
                             debs_dir: Path) -> None:
    """Connected side: base from local packages, build, image and cache exported to a
    directory beside the base's layout. Gapped side: a fresh store, network cut, the
    base's layout imported into it, the same build from those files only: no step
    runs, same image."""
    transfer = builder.tmp / "transfer"
    shutil.copytree(debian_base.layout, transfer / "debian.oci")
    give_to(transfer, builder.user)
    app = _app(builder.tmp, builder.user)
    debs = ["--build-context", f"debs={debs_dir}"]
    proc, _ = builder.build("--build-context", f"debian={debian_base.context}", *debs,
                            "--cache-to", f"type=local,dest={transfer}/cache",
                            "-o", f"type=oci,dest={transfer}/app.oci.tar", app)
    first = image_digest(proc.stderr)
    assert (transfer / "app.oci.tar").stat().st_size > 0

    gapped_store = builder.tmp / "gapped-store"
    with network_namespace() as netns:
        imported = netns.run([OCIBUILD, "--root", gapped_store, "copy", "--progress", "quiet",
                              f"oci:{transfer}/debian.oci:{SUITE}", "store:debian"],
                             user=builder.user, cwd=builder.tmp, timeout=300)
        assert imported.returncode == 0, imported.stderr[-3000:]
        gapped = netns.run([OCIBUILD, "--root", gapped_store, "build",
                            "--progress", "plain", *debs,
                            "--cache-from", f"type=local,src={transfer}/cache", app],
                           user=builder.user, cwd=builder.tmp, timeout=300)
    assert gapped.returncode == 0, gapped.stderr[-3000:]
    states = step_states(gapped.stderr)
    runs = {name: state for name, state in states.items() if "RUN" in name}
    assert len(runs) == 2 and set(runs.values()) == {"CACHED"}, gapped.stderr[-3000:]
    assert image_digest(gapped.stderr) == first
