"""--isolation auto in `docker run` with seccomp unconfined but the rest of Docker's
defaults: /proc stays masked, so a user namespace cannot mount a /proc of its own. A
user gets the error naming that and its fix, and builds once /proc is unmasked; root
falls back to a bare chroot after one notice."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.test_in_docker import run_in_container
from tests.support.dockerd import Dockerd
from tests.support.paths import FIXTURES
from tests.support.users import remove_tree

UNCONFINED = ["--security-opt", "seccomp=unconfined"]
UNMASKED = [*UNCONFINED, "--security-opt", "systempaths=unconfined"]


@pytest.fixture
def mounted() -> Iterator[Path]:
    """The directory the container gets at /out (these tests write only in /tmp)."""
    path = Path(tempfile.mkdtemp(prefix="ocib-container-", dir="/tmp"))
    yield path
    remove_tree(path)


def _build_seed(dockerd: Dockerd, image: str, bb_tar: Path, out: Path,
                options: list[str]) -> subprocess.CompletedProcess[str]:
    script = f"""set -e
        export HOME=/tmp
        grep Seccomp: /proc/self/status
        ocibuild --root /tmp/store import /bb.tar --tag busybox:latest > /dev/null
        ocibuild --root /tmp/store build --progress plain -o type=local,dest=/tmp/o \
            {FIXTURES}/seed
        cat /tmp/o/a.txt /tmp/o/b.txt
    """
    return run_in_container(dockerd, image, script, bb_tar=bb_tar, out=out, options=options)


def test_user_in_container_with_masked_proc(dockerd: Dockerd, python_image: str,
                                            busybox_tar: Path, mounted: Path) -> None:
    masked = _build_seed(dockerd, python_image, busybox_tar, mounted,
                         ["--user", "1000:1000", *UNCONFINED])
    assert "Seccomp:\t0" in masked.stdout, masked.stdout
    assert masked.returncode != 0 and "Traceback" not in masked.stderr, masked.stderr
    (error,) = [line for line in masked.stderr.splitlines() if line.startswith("ocibuild:")]
    assert error.startswith("ocibuild: error: cannot mount in a user namespace (mount proc "
                            "on /proc: Operation not permitted): parts of /proc are masked"), error
    assert "`--security-opt systempaths=unconfined`" in error

    unmasked = _build_seed(dockerd, python_image, busybox_tar, mounted,
                           ["--user", "1000:1000", *UNMASKED])
    assert unmasked.returncode == 0, unmasked.stderr
    assert unmasked.stdout.endswith("a\nb\n") and "notice" not in unmasked.stderr


def test_root_in_container_with_masked_proc(dockerd: Dockerd, python_image: str,
                                            busybox_tar: Path, mounted: Path) -> None:
    done = _build_seed(dockerd, python_image, busybox_tar, mounted, UNCONFINED)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("a\nb\n")
    (notice,) = [line for line in done.stderr.splitlines() if "--isolation auto" in line]
    assert notice.startswith("notice: parts of /proc are masked") and "bare chroot" in notice
