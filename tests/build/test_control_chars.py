"""Control characters a Dockerfile holds never reach the terminal raw: errors, step names
and the failure report show them escaped (a title sequence, a bell, a carriage return)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.build.conftest import Builder, write_context
from tests.progress.terminal import Terminal
from tests.support.paths import OCIBUILD

TITLE = "\x1b]0;pwned\x07"  # sets a terminal's title
# C0 controls but line feed and tab, DEL, and C1 controls
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
ESCAPED_TITLE = "\\x1b]0;pwned\\x07"


def _assert_escaped(text: str) -> None:
    assert not RAW_CONTROL.search(text), repr(text)
    assert ESCAPED_TITLE in text, text


@pytest.mark.parametrize("dockerfile", [
    f"FROM busybox:latest\nCOPY --ch{TITLE}own=1 a /a\n",
    f"FROM busybox:latest AS st{TITLE}age\nRUN true\n",
    f"FROM busybox:latest\nFROB{TITLE} x\n",
    f"FROM busybox:latest\nRUN --mount=type=cache,tar{TITLE}get=/c true\n",
], ids=["flag", "stage-name", "instruction", "mount-key"])
def test_a_bad_instruction_is_reported_escaped(builder: Builder, dockerfile: str) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": dockerfile, "a": "a"},
                        builder.user)
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    _assert_escaped(proc.stderr)


FAILING_RUN = f"FROM busybox:latest\nRUN echo ok; exit 3 # {TITLE}\n"


def test_a_failing_run_is_named_escaped_in_plain_progress_and_error(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": FAILING_RUN}, builder.user)
    proc, _ = builder.build(ctx, check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"#2 [2/2] RUN echo ok; exit 3 # {ESCAPED_TITLE}\n" in proc.stderr
    assert "#2 0." in proc.stderr and " ok\n" in proc.stderr  # its output as printed
    assert f" > [2/2] RUN echo ok; exit 3 # {ESCAPED_TITLE}:\n" in proc.stderr
    assert "exit code: 3" in proc.stderr.splitlines()[-1]
    _assert_escaped(proc.stderr)


def test_a_failing_run_is_named_escaped_on_the_live_display(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": FAILING_RUN}, builder.user)
    term = Terminal()
    proc = builder.user.popen([OCIBUILD, "--root", builder.root, "build", "--progress", "tty",
                               ctx], env={"TERM": "xterm"}, cwd=builder.tmp,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=term.slave)
    term.close_slave()
    proc.communicate(timeout=120)
    term.finish()
    assert proc.returncode == 1
    # what the display draws with (cursor moves, colours, line starts) aside
    raw = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", term.raw.decode()).replace("\r", "")
    _assert_escaped(raw)
    assert ESCAPED_TITLE in term.text()


def test_a_built_image_is_shown_escaped_by_build_inspect_and_du(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        f"# syntax=example/frontend{TITLE}\n"
        f"FROM busybox:latest\nENV GREETING=hi{TITLE}\nRUN echo built # {TITLE}\n")},
        builder.user)
    proc, _ = builder.build("-t", "titled:1", ctx)
    _assert_escaped(proc.stderr)
    assert f"# syntax=example/frontend{ESCAPED_TITLE} names a frontend" in proc.stderr
    shown = builder.user.run([OCIBUILD, "--root", builder.root, "inspect", "titled:1"])
    assert shown.returncode == 0, shown.stderr
    _assert_escaped(shown.stdout)
    assert f"Env:        GREETING=hi{ESCAPED_TITLE}" in shown.stdout
    du = builder.user.run([OCIBUILD, "--root", builder.root, "cache", "du", "--verbose"])
    assert du.returncode == 0, du.stderr
    _assert_escaped(du.stdout)  # a record's description is its step's name
