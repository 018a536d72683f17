"""Asks the rebuild memo, as a user, whether it would answer an `ocibuild build`."""

from __future__ import annotations

from pathlib import Path

from tests.support.paths import OCIBUILD, REPO
from tests.support.users import User

MEMO_CHECK = (
    "import sys\n"
    "from ocibuild import rebuild_memo\n"
    "inv = rebuild_memo.parse(sys.argv[1:])\n"
    "answered = inv is not None and rebuild_memo.replay(inv)\n"
    "sys.stdout.write(f'\\nANSWERED={answered}\\n')\n"
)


def memo_answers(user: User, root: Path, build_args: list[str | Path], cwd: Path,
                 env: dict[str, str] | None = None) -> bool:
    """Would the memo answer `ocibuild --root ROOT build BUILD_ARGS` run by `user` in
    `cwd`? (When it would, it has just printed its answer, as the command would.)"""
    argv = ["--root", str(root), "build", *map(str, build_args)]
    proc = user.run([Path(OCIBUILD).parent / "python", "-c", MEMO_CHECK, *argv],
                    env={"PYTHONPATH": str(REPO), **(env or {})}, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.rstrip().endswith("ANSWERED=True")
