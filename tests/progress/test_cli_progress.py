"""`ocibuild build --progress …` as a user sees it: real builds by the unprivileged user,
their stderr on a real pseudo-terminal (drawn by a terminal emulator) or a pipe."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
from datetime import datetime
from pathlib import Path

from tests.build.conftest import Builder, copy_fixture, step_states, write_context
from tests.progress.terminal import Terminal
from tests.support.paths import OCIBUILD, REPO

PYTHON = Path(OCIBUILD).parent / "python"
# `ocibuild ARGS`, then whether rich (the live display's library) was ever imported
REPORTS_RICH = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('RICH=%s' % any(m.split('.')[0] == 'rich'"
    " for m in sys.modules)))\n"
    "from ocibuild.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
MEMO_CHECK = (
    "import sys\n"
    "from ocibuild import rebuild_memo\n"
    "inv = rebuild_memo.parse(sys.argv[1:])\n"
    "print('ANSWERED=%s' % (inv is not None and rebuild_memo.replay(inv)))\n"
)
SEED_STEPS = ["[stage-a 1/2] FROM busybox:latest", "[stage-a 2/2] RUN echo a > /a.txt",
              "[stage-b 2/2] RUN echo b > /b.txt",
              "[stage-2 2/3] COPY --from=stage-a /a.txt /a.txt",
              "[stage-2 3/3] COPY --from=stage-b /b.txt /b.txt"]
HEADER = re.compile(r"\[\+\] Building \d+\.\ds \((\d+)/(\d+)\) FINISHED")


def _on_terminal(builder: Builder, term: Terminal, script: str, *args: str | Path
                 ) -> subprocess.Popen[str]:
    """Run a python `script` (given `--root STORE build ARGS`) as the user, stderr on
    the terminal, in its own process group (as a shell runs a job)."""
    proc = builder.user.popen([PYTHON, "-c", script, "--root", builder.root, "build", *args],
                              env={"TERM": "xterm", "PYTHONPATH": str(REPO)},
                              cwd=builder.tmp, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=term.slave,
                              start_new_session=True)
    term.close_slave()
    return proc


def _finished(proc: subprocess.Popen[str], term: Terminal) -> tuple[int, str, list[str]]:
    out, _ = proc.communicate(timeout=120)
    term.finish()
    return proc.returncode, out, term.lines()


def _frame(screen: list[str]) -> tuple[str, dict[str, str]]:
    """The final frame's header and each step's state: CACHED, ERROR, CANCELED or DONE
    (a step with no label: it ran and ended)."""
    start = next(i for i, line in enumerate(screen) if HEADER.fullmatch(line))
    states: dict[str, str] = {}
    for line in screen[start + 1:]:
        if not line.startswith(" => "):
            break
        if line.startswith(" => => "):  # a step's status (its bytes), not a step
            continue
        m = re.fullmatch(r" => (?:(CACHED|ERROR|CANCELED) )?(.*?) +\d+\.\ds", line)
        assert m, line
        states[m.group(2)] = m.group(1) or "DONE"
    return screen[start], states


def test_a_terminal_gets_the_live_display_and_keeps_its_final_frame(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    term = Terminal()
    code, out, screen = _finished(_on_terminal(builder, term, REPORTS_RICH, ctx), term)
    assert code == 0, "\n".join(screen)
    header, states = _frame(screen)
    # the five steps and, as buildx shows it, "exporting to image" (the layers written)
    assert HEADER.fullmatch(header).group(1) == "6"  # type: ignore[union-attr]
    assert states == {SEED_STEPS[0]: "CACHED", **{s: "DONE" for s in SEED_STEPS[1:]},
                      "exporting to image": "DONE"}, "\n".join(screen)
    assert term.colour_of("RUN echo a") == "blue"
    text = "\n".join(screen)
    # the closing line comes after the frame, on a line of its own
    assert re.search(r"exporting to image +\d\.\ds\n(?: => => .*\n)*writing image sha256:",
                     text), text
    assert "#1 " not in text  # no plain text
    assert not term.cursor_hidden()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\nRICH=True\n", out)

    term = Terminal()
    code, out, screen = _finished(_on_terminal(builder, term, REPORTS_RICH, ctx), term)
    assert code == 0
    assert _frame(screen)[1] == {s: "CACHED" for s in SEED_STEPS}


def test_a_plain_build_does_not_import_rich(builder: Builder) -> None:
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    for args in (["--progress", "plain"], []):  # auto on a pipe is plain too
        proc = builder.user.run([PYTHON, "-c", REPORTS_RICH, "--root", builder.root, "build",
                                 *args, ctx], env={"PYTHONPATH": str(REPO)}, cwd=builder.tmp)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.endswith("RICH=False\n")
        assert step_states(proc.stderr)  # BuildKit's plain "#N" lines


def test_a_terminal_and_a_pipe_each_get_their_own_memo(builder: Builder) -> None:
    """The same command line: on a pipe the memo prints the plain text again; on a
    terminal it draws the live display's last frame again (without loading rich), and
    neither ever answers for the other."""
    ctx = copy_fixture("seed", builder.tmp / "seed", builder.user)
    args = ["-t", "seed:memo", str(ctx)]
    piped = builder.user.run([OCIBUILD, "--root", builder.root, "build", *args],
                             cwd=builder.tmp)
    assert piped.returncode == 0 and "#2 DONE" in piped.stderr
    memo = builder.user.run([PYTHON, "-c", MEMO_CHECK, "--root", builder.root, "build", *args],
                            env={"PYTHONPATH": str(REPO)}, cwd=builder.tmp)
    assert memo.stdout.endswith("\nANSWERED=True\n")  # a pipe gets the plain memo ...
    quiet = builder.user.run([PYTHON, "-c", MEMO_CHECK, "--root", builder.root, "build", *args],
                             env={"PYTHONPATH": str(REPO), "BUILDKIT_PROGRESS": "quiet"},
                             cwd=builder.tmp)
    assert quiet.stdout == "ANSWERED=False\n"  # (what auto shows is part of its name)
    term = Terminal()
    code, out, screen = _finished(_on_terminal(builder, term, MEMO_CHECK, *args), term)
    assert out == "ANSWERED=False\n"  # ... a terminal does not
    assert "\n".join(screen).strip() == ""

    term = Terminal()
    code, out, engine_screen = _finished(_on_terminal(builder, term, REPORTS_RICH, *args),
                                         term)
    assert code == 0 and out.endswith("RICH=True\n")  # the engine's live display
    header, states = _frame(engine_screen)
    assert states == {s: "CACHED" for s in SEED_STEPS}

    term = Terminal()
    code, out, screen = _finished(_on_terminal(builder, term, REPORTS_RICH, *args), term)
    assert code == 0 and out.endswith("RICH=False\n"), out  # answered by the memo
    assert HEADER.fullmatch(_frame(screen)[0]) and _frame(screen)[1] == states
    assert term.colour_of("RUN echo a") == "blue" and not term.cursor_hidden()
    assert "#1 " not in "\n".join(screen)
    assert [line for line in screen if line.startswith("writing image")] == \
        [line for line in engine_screen if line.startswith("writing image")]
    # and the terminal's memo never answers a pipe
    again = builder.user.run([OCIBUILD, "--root", builder.root, "build", *args],
                             cwd=builder.tmp)
    assert set(step_states(again.stderr).values()) == {"CACHED"}


def test_a_failing_step_shows_error_and_the_failure_report(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "fail", {"Dockerfile": (
        "FROM busybox:latest\nRUN echo about to fail && echo on stderr >&2 && exit 3\n")},
        builder.user)
    term = Terminal()
    code, out, screen = _finished(_on_terminal(builder, term, REPORTS_RICH, ctx), term)
    assert code == 1
    step = "[2/2] RUN echo about to fail && echo on stderr >&2 && exit 3"
    header, states = _frame(screen)
    assert states == {"[1/2] FROM busybox:latest": "CACHED", step: "ERROR"}
    assert term.colour_of("ERROR") == "red"
    text = "\n".join(screen)
    assert f"------\n > {step}:\nabout to fail\non stderr\n------\n" in text
    assert re.search(r"\nocibuild: error: failed to solve: .*exit code: 3", text, re.DOTALL)
    assert not term.cursor_hidden()


def test_ctrl_c_leaves_the_final_frame_and_a_sane_terminal(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "slow", {"Dockerfile": (
        "FROM busybox:latest\nRUN echo waiting now && sleep 30\n")}, builder.user)
    term = Terminal()
    proc = _on_terminal(builder, term, REPORTS_RICH, ctx)
    term.wait_for(lambda s: " => => # waiting now" in s, alive=lambda: proc.poll() is None)
    assert term.cursor_hidden()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C on the terminal sends
    code, out, screen = _finished(proc, term)
    assert code == 130
    assert _frame(screen)[1] == {"[1/2] FROM busybox:latest": "CACHED",
                                 "[2/2] RUN echo waiting now && sleep 30": "CANCELED"}
    assert [line for line in screen if line][-1] == "ocibuild: interrupted"
    assert not term.cursor_hidden()


def test_tty_mode_without_a_terminal_is_an_error(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": "FROM busybox:latest\n"},
                        builder.user)
    proc = builder.user.run([OCIBUILD, "--root", builder.root, "build", "--progress", "tty",
                             ctx], cwd=builder.tmp)
    assert proc.returncode == 1
    assert "failed to get console: stderr is not a terminal" in proc.stderr
    assert "writing image" not in proc.stderr and proc.stdout == ""


def test_rawjson_is_one_solve_status_per_line_for_every_step(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "json", {"Dockerfile": (
        "FROM busybox:latest AS base\nRUN echo first line && echo second line\n"
        "FROM base\nRUN echo next\n")}, builder.user)
    steps = ["[base 1/2] FROM busybox:latest", "[base 2/2] RUN echo first line && echo second line",
             "[stage-1 2/2] RUN echo next"]
    cold = builder.user.run([OCIBUILD, "--root", builder.root, "build", "--progress", "rawjson",
                             ctx], cwd=builder.tmp)
    assert cold.returncode == 0, cold.stderr
    lines = [json.loads(line) for line in cold.stderr.splitlines()]  # every line is JSON
    vertexes = [v for line in lines for v in line.get("vertexes", [])]
    by_name: dict[str, list[dict[str, object]]] = {}
    for v in vertexes:
        by_name.setdefault(str(v["name"]), []).append(v)
        for key in ("started", "completed"):
            if key in v:
                datetime.fromisoformat(str(v[key]))  # RFC 3339
    assert list(by_name)[:3] == steps
    assert by_name[steps[0]][-1]["cached"] is True
    run = by_name[steps[1]]
    assert "completed" not in run[0] and run[-1]["completed"] >= run[-1]["started"]
    logs = [log for line in lines for log in line.get("logs", [])]
    assert {log["vertex"] for log in logs} == {run[0]["digest"], by_name[steps[2]][0]["digest"]}
    output = b"".join(base64.b64decode(log["data"]) for log in logs
                      if log["vertex"] == run[0]["digest"])
    assert output == b"first line\nsecond line\n"
    export = lines[-1]
    assert export["vertexes"][0]["name"] == "exporting to image"
    assert export["statuses"][0]["id"].startswith("writing image sha256:")

    # buildx's BUILDKIT_PROGRESS names what auto shows; json is rawjson's other name
    again = builder.user.run([OCIBUILD, "--root", builder.root, "build", ctx],
                             env={"BUILDKIT_PROGRESS": "json"}, cwd=builder.tmp)
    cached = [v for line in again.stderr.splitlines()
              for v in json.loads(line).get("vertexes", [])]
    assert {v["name"] for v in cached if v.get("cached")} == set(steps)
    # a vertex is its step's op in the build graph: the same digest in every build
    assert {str(v["name"]): v["digest"] for v in cached if v["name"] in steps} == \
        {name: by_name[name][0]["digest"] for name in steps}
