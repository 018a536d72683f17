"""sandbox.prestart(): the fork server starts before the first step needs it, once however
many threads ask, and a failure waits for that step to report it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.sandbox.conftest import ROOT_USER, Sandboxer
from tests.support.paths import REPO, VENV_BIN
from tests.support.users import NOSUB_USER, User

PROBE = [str(VENV_BIN / "python"), "-m", "tests.sandbox.prestart_probe"]
NO_UNSHARE = [str(VENV_BIN / "python"), "-m", "tests.sandbox.no_unshare"]


def _probe(user: User, rootfs: Path, isolation: str, *, wrap: list[str] = []) -> dict:  # noqa: B006
    done = user.run([*wrap, *PROBE, str(rootfs), isolation], cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_prestart_starts_one_fork_server_that_the_first_step_uses(sbx: Sandboxer) -> None:
    report = _probe(sbx.user, sbx.busybox, "userns")
    assert report["raised"] == []
    assert report["servers_before_step"] == 1  # eight concurrent calls, one server
    assert report.get("error") is None and report["exit_code"] == 0
    assert report["servers_after_step"] == 1  # the step used it, did not start another


def test_a_failed_prestart_is_reported_by_the_first_step(busybox_rootfs: Path) -> None:
    report = _probe(ROOT_USER, busybox_rootfs, "userns", wrap=NO_UNSHARE)
    assert report["raised"] == []
    assert report["servers_before_step"] == 0
    assert "seccomp" in report["error"] and "--isolation chroot" in report["error"]


def test_prestart_of_chroot_as_root_where_unshare_is_forbidden(busybox_rootfs: Path) -> None:
    report = _probe(ROOT_USER, busybox_rootfs, "chroot", wrap=NO_UNSHARE)
    assert report["raised"] == [] and report["servers_before_step"] == 1
    assert report["exit_code"] == 0 and report["servers_after_step"] == 1


def test_prestart_of_chroot_as_a_user_leaves_the_refusal_to_the_step(
        busybox_rootfs: Path) -> None:
    report = _probe(User.lookup(NOSUB_USER), busybox_rootfs, "chroot")
    assert report["raised"] == [] and report["servers_before_step"] == 0
    assert "needs root" in report["error"]
