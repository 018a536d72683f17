from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.users import NOSUB_USER, SUB_USER, User, remove_tree


def pytest_configure(config: pytest.Config) -> None:
    # A shell that starts the suite as a background job (`.ci/run &`, some CI runners)
    # ignores SIGINT, and every build a test starts would inherit that: the tests that
    # press Ctrl-C on a build (as in a terminal) would wait for it forever.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)



def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the suite runs as root (scripts/test.sh); it drops to test users itself")


@pytest.fixture(scope="session")
def sub_user() -> User:
    """Unprivileged user with subordinate id ranges."""
    _require_root()
    return User.lookup(SUB_USER)


@pytest.fixture(scope="session")
def nosub_user() -> User:
    """Unprivileged user without subordinate id ranges."""
    _require_root()
    return User.lookup(NOSUB_USER)


@pytest.fixture
def sub_tmp(sub_user: User) -> Iterator[Path]:
    path = sub_user.make_tempdir()
    yield path
    remove_tree(path)


@pytest.fixture
def nosub_tmp(nosub_user: User) -> Iterator[Path]:
    path = nosub_user.make_tempdir()
    yield path
    remove_tree(path)


@pytest.fixture(scope="session")
def busybox_rootfs() -> Iterator[Path]:
    """A busybox root filesystem made by rootfs/busybox/make.sh, readable by the test
    users (pytest's own temp dirs are private to root). Treat it as read-only."""
    base = Path(tempfile.mkdtemp(prefix="ocib-busybox-", dir="/tmp"))
    os.chmod(base, 0o755)
    dest = base / "rootfs"
    subprocess.run(["bash", str(REPO / "rootfs/busybox/make.sh"), str(dest)], check=True,
                   capture_output=True)
    yield dest
    remove_tree(base)
