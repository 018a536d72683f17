"""ocibuild inside `docker run` with Docker's default seccomp profile and capabilities
(not privileged), where `unshare` is refused: as root it builds with the chroot
fallback; as a user without a subuid range it fails with a clear error."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.build import imagefs
from tests.support.dockerd import Dockerd
from tests.support.paths import FIXTURES, REPO, VENV_BIN
from tests.support.users import remove_tree

STEPS_DOCKERFILE = """\
FROM busybox:latest
RUN mkdir -p /app && echo built > /app/out.txt && chown 1000:1000 /app/out.txt
RUN id -u > /app/uid && rm /etc/nsswitch.conf
USER 1000
RUN id -u > /tmp/by-user
"""


@pytest.fixture
def out_dir() -> Iterator[Path]:
    """The directory mounted writable at /out: the store, the contexts and the outputs."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="ocib-container-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    remove_tree(path)


def run_in_container(dockerd: Dockerd, image: str, script: str, *, bb_tar: Path, out: Path,
                     options: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """`sh -c script` in a container of `image`: default seccomp profile and capabilities,
    no network, the host's /usr and this checkout read-only, `out` at /out, the busybox
    base's tarball (to import) at /bb.tar."""
    return dockerd.docker(
        "run", "--rm", "--network", "none", *options,
        "-v", "/usr:/usr:ro", "-v", f"{REPO}:{REPO}:ro", "-v", f"{bb_tar}:/bb.tar:ro",
        "-v", f"{out}:/out",
        "-e", f"PATH={VENV_BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "-e", "LANG=C.UTF-8",
        image, "sh", "-c", script, check=False)


def _seccomp_filtered(proc: subprocess.CompletedProcess[str]) -> None:
    """The container really runs under a seccomp filter (the script prints it first)."""
    assert "Seccomp:\t2" in proc.stdout, proc.stdout


def test_root_in_container_builds_with_chroot_fallback(
        dockerd: Dockerd, python_image: str, busybox_tar: Path, out_dir: Path) -> None:
    steps = out_dir / "steps"
    steps.mkdir()
    (steps / "Dockerfile").write_text(STEPS_DOCKERFILE)
    build = "ocibuild --root /out/store build --progress plain"
    script = f"""set -e
        grep Seccomp: /proc/self/status
        ocibuild --root /out/store import /bb.tar --tag busybox:latest
        {build} -t seed:ci -o type=oci,dest=/out/seed.oci,tar=false {FIXTURES}/seed \
            2> /out/seed.log
        {build} -t steps:ci -o type=oci,dest=/out/steps.oci,tar=false /out/steps \
            2> /out/steps.log
    """
    proc = run_in_container(dockerd, python_image, script, bb_tar=busybox_tar, out=out_dir)
    logs = {name: (out_dir / f"{name}.log").read_text() if (out_dir / f"{name}.log").exists()
            else "" for name in ("seed", "steps")}
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{logs}"
    _seccomp_filtered(proc)

    seed = imagefs.load(out_dir / "seed.oci")
    assert seed.files["a.txt"].data == b"a\n"
    assert seed.files["b.txt"].data == b"b\n"
    image = imagefs.load(out_dir / "steps.oci")
    out = image.files["app/out.txt"]
    assert (out.data, out.info.uid, out.info.gid) == (b"built\n", 1000, 1000)
    assert image.files["app/uid"].data == b"0\n"  # real root of the container
    assert "etc/nsswitch.conf" not in image.files  # a deletion is a whiteout
    assert image.files["tmp/by-user"].data == b"1000\n"
    assert image.files["tmp/by-user"].info.uid == 1000

    for name, log in logs.items():
        notices = [line for line in log.splitlines() if "--isolation auto" in line]
        assert len(notices) == 1, f"{name}: {notices}\n{log}"
        assert "seccomp" in notices[0] and "chroot" in notices[0]
        assert "Traceback" not in log


def test_user_without_subuids_in_container_fails_clearly(
        dockerd: Dockerd, python_image: str, busybox_tar: Path, out_dir: Path) -> None:
    script = f"""set -e
        grep Seccomp: /proc/self/status
        export HOME=/tmp
        ocibuild --root /tmp/store import /bb.tar --tag busybox:latest
        echo imported
        ocibuild --root /tmp/store build --progress plain {FIXTURES}/seed
    """
    proc = run_in_container(dockerd, python_image, script, bb_tar=busybox_tar, out=out_dir,
                            options=["--user", "1000:1000"])
    _seccomp_filtered(proc)
    assert "imported" in proc.stdout, proc.stderr
    assert proc.returncode not in (0, None), proc.stderr
    assert "seccomp" in proc.stderr, proc.stderr
    assert "--security-opt seccomp=unconfined" in proc.stderr  # the fix
    assert "Traceback" not in proc.stderr
