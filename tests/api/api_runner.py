"""Run Python code as the unprivileged user with this checkout's interpreter."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.build.conftest import Builder, give_to
from tests.support.paths import VENV_BIN

PYTHON = VENV_BIN / "python"


def run_as_user(builder: Builder, code: str, *args: str, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`code` as a script of the user, given `args`, run in `cwd` (default the user's
    directory) with OCIBUILD_ROOT the builder's store."""
    script = builder.tmp / f"script-{len(list(builder.tmp.glob('script-*.py')))}.py"
    script.write_text(code)
    give_to(script, builder.user)
    return builder.user.run([PYTHON, script, *args], cwd=cwd or builder.tmp,
                            env={"OCIBUILD_ROOT": str(builder.root), **(env or {})})


def api_result(builder: Builder, code: str, *args: str, **kwargs: Any) -> Any:
    """What `code` printed last, as JSON; the script must succeed."""
    proc = run_as_user(builder, code, *args, **kwargs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])
