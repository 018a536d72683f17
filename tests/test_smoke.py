from __future__ import annotations

import subprocess

from tests.support.paths import OCIBUILD
from tests.support.users import User


def test_version_runs_as_unprivileged_user(sub_user: User) -> None:
    res = sub_user.run([OCIBUILD, "--version"])
    assert res.returncode == 0, res.stderr
    assert "ocibuild" in res.stdout


def test_python_dash_m() -> None:
    res = subprocess.run([str(OCIBUILD.parent / "python"), "-m", "ocibuild", "--version"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "0.1.0" in res.stdout
