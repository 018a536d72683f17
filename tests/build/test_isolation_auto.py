"""--isolation auto|userns|chroot end to end.

Where unshare is refused (tests/sandbox/no_unshare.py: a seccomp filter refusing it,
and only Docker's default capabilities, as in `docker run`): root builds in a bare
chroot after one notice; a user, or root asking for userns, gets one error naming the
cause and the fix. Without the filter root builds in user namespaces, silently."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build import imagefs
from tests.build.conftest import copy_fixture, write_context
from tests.sandbox.conftest import ROOT_USER
from tests.support.paths import FIXTURES, OCIBUILD, REPO, VENV_BIN
from tests.support.users import User, remove_tree

NO_UNSHARE = [str(VENV_BIN / "python"), "-m", "tests.sandbox.no_unshare", "--docker-caps"]
NOTICE_MARK = "--isolation auto runs RUN steps"
README_POINTER = 'README, "Sandbox isolation"'

# writes, chowns and deletes in RUN steps (run as real root, and as USER 1000), a COPY
# from the context and a WORKDIR: every kind of file op, done without a user namespace
STEPS = """\
FROM busybox:latest
COPY hello.txt /app/
WORKDIR /work/dir
RUN echo built > /app/out.txt && chown 1000:1000 /app/out.txt && rm /etc/group
RUN id -u > /app/uid
USER 1000
RUN id -u > /tmp/by-user
"""


@pytest.fixture
def root_tmp() -> Iterator[Path]:
    path = ROOT_USER.make_tempdir()
    yield path
    remove_tree(path)


@pytest.fixture
def root_store(root_tmp: Path, busybox_store_template: Path) -> Path:
    store = root_tmp / "store"
    shutil.copytree(busybox_store_template, store, symlinks=True)
    return store


def ocibuild(user: User, store: Path, *args: str | Path,
             filtered: bool) -> subprocess.CompletedProcess[str]:
    """`ocibuild build` as `user`, under the no-unshare filter when `filtered`."""
    command = [OCIBUILD, "--root", store, "build", "--progress", "plain", *args]
    return user.run([*NO_UNSHARE, *command] if filtered else command, cwd=REPO)


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NOTICE_MARK in line]


def steps_context(dest: Path, user: User) -> Path:
    return write_context(dest, {"Dockerfile": STEPS, "hello.txt": "hello\n"}, user)


def _as_root_of_a_user_namespace(user: User, script: str, *args: str | Path,
                                 cwd: Path) -> subprocess.CompletedProcess[str]:
    """`sh -c script sh ARGS` as root of a user namespace of `user` mapping its own id
    to 0 and its subordinate range from 1, as a rootless container runtime does."""
    return user.run(["unshare", "--map-root-user", "--map-users=auto", "--map-groups=auto",
                     "sh", "-c", script, "sh", *args], cwd=cwd)


def _user_store(user: User, tmp: Path, template: Path) -> Path:
    store = tmp / "store"
    shutil.copytree(template, store, symlinks=True)
    for p in [store, *store.rglob("*")]:
        os.lchown(p, user.uid, user.gid)
    return store


def check_steps_image(image: imagefs.Image) -> None:
    assert image.files["app/hello.txt"].data == b"hello\n"
    out = image.files["app/out.txt"]
    assert (out.data, out.info.uid, out.info.gid) == (b"built\n", 1000, 1000)
    assert image.files["app/uid"].data == b"0\n"
    assert "etc/group" not in image.files  # a deletion: a whiteout
    assert image.files["work/dir"].info.isdir()
    assert image.files["tmp/by-user"].data == b"1000\n"
    assert image.files["tmp/by-user"].info.uid == 1000


def test_root_where_unshare_is_refused_builds_in_a_bare_chroot(
        root_tmp: Path, root_store: Path) -> None:
    local, layout, archive = root_tmp / "local", root_tmp / "seed.oci", root_tmp / "seed.tar"
    seed = ocibuild(ROOT_USER, root_store, "-o", f"type=local,dest={local}",
                    FIXTURES / "seed", filtered=True)
    assert seed.returncode == 0, seed.stderr
    assert (local / "a.txt").read_text() == "a\n" and (local / "b.txt").read_text() == "b\n"
    (notice,) = notices(seed.stderr)
    assert notice.startswith("notice: a seccomp filter refuses to create namespaces")
    assert "bare chroot as real root" in notice and README_POINTER in notice
    assert "Traceback" not in seed.stderr

    # the OCI outputs, from the same (now cached) steps: still one notice each
    for dest in (f"type=oci,dest={layout},tar=false", f"type=oci,dest={archive}"):
        again = ocibuild(ROOT_USER, root_store, "-o", dest, FIXTURES / "seed",
                         filtered=True)
        assert again.returncode == 0, again.stderr
        assert len(notices(again.stderr)) == 1, again.stderr
    image = imagefs.load(layout)
    assert image.files["a.txt"].data == b"a\n" and image.files["b.txt"].data == b"b\n"
    with tarfile.open(archive) as tar:
        assert {"oci-layout", "index.json"} <= set(tar.getnames())

    steps = ocibuild(ROOT_USER, root_store, "-o", f"type=oci,dest={root_tmp / 'steps.oci'},"
                     "tar=false", steps_context(root_tmp / "steps", ROOT_USER),
                     filtered=True)
    assert steps.returncode == 0, steps.stderr
    assert len(notices(steps.stderr)) == 1, steps.stderr
    check_steps_image(imagefs.load(root_tmp / "steps.oci"))


API_BUILD = """\
import json, sys, ocibuild
report = ocibuild.build(sys.argv[1], root=sys.argv[2], isolation=sys.argv[3])
print(json.dumps(report.warnings))
"""


def test_the_python_api_falls_back_the_same(root_tmp: Path, root_store: Path) -> None:
    api = [str(VENV_BIN / "python"), "-c", API_BUILD, str(FIXTURES / "seed"), str(root_store)]
    done = ROOT_USER.run([*NO_UNSHARE, *api, "auto"], cwd=REPO)
    assert done.returncode == 0, done.stderr
    (notice,) = json.loads(done.stdout)
    assert notice.startswith("notice: a seccomp filter") and NOTICE_MARK in notice
    refused = ROOT_USER.run([*NO_UNSHARE, *api, "userns"], cwd=REPO)
    assert refused.returncode != 0
    assert "SandboxError: cannot create a user namespace" in refused.stderr


NS_PROBE = """\
FROM busybox:latest
RUN readlink /proc/self/ns/user > /userns
"""


def _step_userns(root_tmp: Path, store: Path, *args: str) -> tuple[str, str]:
    """The user namespace a RUN step of a fresh build ran in, and the build's stderr."""
    context = write_context(root_tmp / f"ns{len(list(root_tmp.glob('ns*')))}",
                            {"Dockerfile": NS_PROBE}, ROOT_USER)
    out = root_tmp / f"{context.name}-out"
    done = ocibuild(ROOT_USER, store, "--no-cache", *args, "-o", f"type=local,dest={out}",
                    context, filtered=False)
    assert done.returncode == 0, done.stderr
    return (out / "userns").read_text().strip(), done.stderr


def test_root_with_namespaces_uses_a_user_namespace_unless_asked_for_chroot(
        root_tmp: Path, root_store: Path) -> None:
    host = os.readlink("/proc/self/ns/user")
    auto, auto_log = _step_userns(root_tmp, root_store)
    assert auto != host and notices(auto_log) == []
    chroot, chroot_log = _step_userns(root_tmp, root_store, "--isolation", "chroot")
    assert chroot == host and notices(chroot_log) == []  # asked for: nothing to announce
    userns, _ = _step_userns(root_tmp, root_store, "--isolation", "userns")
    assert userns != host

    steps = ocibuild(ROOT_USER, root_store, "-o", f"type=oci,dest={root_tmp / 'steps.oci'},"
                     "tar=false", steps_context(root_tmp / "steps", ROOT_USER),
                     filtered=False)
    assert steps.returncode == 0, steps.stderr
    assert notices(steps.stderr) == []
    check_steps_image(imagefs.load(root_tmp / "steps.oci"))


def _the_error(done: subprocess.CompletedProcess[str]) -> str:
    """The build's one error line; nothing ran before it and no traceback came."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert not any(line.startswith("#") for line in done.stderr.splitlines()), done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("ocibuild: ")]
    return error


def test_user_where_unshare_is_refused_gets_the_cause_and_fix(
        sub_user: User, sub_tmp: Path, busybox_store_template: Path) -> None:
    store = _user_store(sub_user, sub_tmp, busybox_store_template)
    context = copy_fixture("seed", sub_tmp / "seed", sub_user)
    for isolation in ("auto", "userns"):
        error = _the_error(ocibuild(sub_user, store, "--isolation", isolation, context,
                                    filtered=True))
        assert error.startswith("ocibuild: error: cannot create a user namespace "
                                "(unshare: Operation not permitted): a seccomp filter "
                                "refuses to create namespaces (Seccomp: 2"), error
        assert "`--security-opt seccomp=unconfined`" in error
        assert "`--security-opt systempaths=unconfined`" in error
        assert "run ocibuild as root in the container" in error


def test_root_asking_for_userns_where_unshare_is_refused_gets_the_error(
        root_tmp: Path, root_store: Path) -> None:
    error = _the_error(ocibuild(ROOT_USER, root_store, "--isolation", "userns",
                                FIXTURES / "seed", filtered=True))
    assert "a seccomp filter refuses to create namespaces" in error
    assert "or use --isolation chroot (or auto, the default)" in error

    overlay = ocibuild(ROOT_USER, root_store, "--snapshotter", "overlay", FIXTURES / "seed",
                       filtered=True)
    assert overlay.returncode == 2, overlay.stderr
    assert "--snapshotter overlay: steps cannot mount here" in overlay.stderr


def test_chroot_as_a_user_is_refused(sub_user: User, sub_tmp: Path) -> None:
    done = sub_user.run([OCIBUILD, "--root", sub_tmp / "store", "build", "--isolation",
                         "chroot", FIXTURES / "seed"])
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "ocibuild: error: --isolation chroot needs root" in done.stderr


def test_unknown_isolation_is_a_usage_error(tmp_path: Path) -> None:
    from ocibuild import build
    from ocibuild.errors import UsageError

    with pytest.raises(UsageError, match="unknown isolation 'sideways'"):
        build(FIXTURES / "seed", isolation="sideways", root=tmp_path / "store")
    assert not (tmp_path / "store").exists()


OPAQUE = """\
FROM busybox:latest
RUN rm -rf /home && mkdir /home && echo x > /home/only && rm /etc/group
RUN ls /home > /listed
"""


def test_root_of_a_rootless_container_builds_in_nested_user_namespaces(
        sub_user: User, sub_tmp: Path, busybox_store_template: Path) -> None:
    """Root of a user namespace that maps only some ids (a rootless container's) maps
    those it has into the sandbox's: chown to 1000 works, nothing is announced."""
    store = _user_store(sub_user, sub_tmp, busybox_store_template)
    layout = sub_tmp / "steps.oci"
    done = _as_root_of_a_user_namespace(
        sub_user, 'exec "$@"', OCIBUILD, "--root", store, "build", "--progress", "plain",
        "-o", f"type=oci,dest={layout},tar=false", steps_context(sub_tmp / "steps", sub_user),
        cwd=sub_tmp)
    assert done.returncode == 0, done.stderr
    assert notices(done.stderr) == []
    check_steps_image(imagefs.load(layout))


def test_root_where_user_namespaces_are_disabled_keeps_the_other_namespaces(
        sub_user: User, sub_tmp: Path, busybox_store_template: Path) -> None:
    """user.max_user_namespaces=0 set inside a user namespace of the test's own (the
    host's stays as it is), whose root builds: chroot isolation with mount, PID and
    network namespaces, overlay roots included (a whiteout and an opaque directory)."""
    store = _user_store(sub_user, sub_tmp, busybox_store_template)
    context = write_context(sub_tmp / "ctx", {"Dockerfile": OPAQUE}, sub_user)
    layout = sub_tmp / "out"
    done = _as_root_of_a_user_namespace(
        sub_user, 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', OCIBUILD,
        "--root", store, "build", "--progress", "plain", "-o",
        f"type=oci,dest={layout},tar=false", context, cwd=sub_tmp)
    assert done.returncode == 0, done.stderr
    (notice,) = notices(done.stderr)
    assert notice.startswith("notice: user namespaces are disabled on this host "
                             "(user.max_user_namespaces=0"), notice
    assert "chroot isolation, as real root" in notice and README_POINTER in notice
    image = imagefs.load(layout)
    assert image.files["listed"].data == b"only\n"
    assert [n for n in image.files if n.startswith("home/")] == ["home/only"]
    assert "etc/group" not in image.files


def test_user_where_user_namespaces_are_disabled_gets_the_sysctl_and_fix(
        sub_user: User, sub_tmp: Path, busybox_store_template: Path) -> None:
    """user.max_user_namespaces=0 in a throwaway user namespace, where uid 1000 builds:
    the error names the setting and the sysctl that changes it, before any step."""
    store = _user_store(sub_user, sub_tmp, busybox_store_template)
    from ocibuild.sandbox.idmapping import subordinate_ranges

    # uid 1000 of the namespace is the 1000th id of the user's subordinate range
    (start, _), *_ = subordinate_ranges(Path("/etc/subuid"), sub_user.name, sub_user.uid)
    inner = start + 999
    for p in [store, *store.rglob("*")]:
        os.lchown(p, inner, inner)
    script = ('echo 0 > /proc/sys/user/max_user_namespaces && '
              'exec setpriv --reuid 1000 --regid 1000 --clear-groups "$@"')
    error = _the_error(_as_root_of_a_user_namespace(
        sub_user, script, OCIBUILD, "--root", store, "build", "--progress", "plain",
        FIXTURES / "seed", cwd=Path("/tmp")))
    assert error == ("ocibuild: error: cannot create a user namespace: user namespaces are "
                     "disabled on this host (user.max_user_namespaces=0 in "
                     "/proc/sys/user/max_user_namespaces); as root run "
                     "`sysctl -w user.max_user_namespaces=15000`")
