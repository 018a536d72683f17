"""A process in a step cannot reach the builder through the step's init (pid 1).

The attack: init holds the step's control socket to the builder; a step that can
take it (pidfd_getfd on a dumpable init) writes forged messages into it, a CREATED
list whose paths climb out of the root (the builder's clean-up unlinks them), a
STEP_PGID naming another process group of the builder's user (which the builder
kills), an ERROR or EXITED of its choosing. The static helpers in tests/sandbox/attack
do it from inside; these tests check that nothing outside the step is touched and
that the builder reports the step cleanly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import attack
from tests.sandbox.conftest import DRIVER, Sandboxer, stderr_text, stdout_text
from tests.support.paths import REPO, VENV_BIN

FORGED_ERROR = "FORGED-BY-THE-STEP"


@pytest.fixture(scope="session")
def helpers() -> dict[str, Path]:
    return attack.helpers()


def make_root(sbx: Sandboxer, kind: str, files: dict[str, Path | bytes]) -> str | dict[str, Any]:
    """A step root holding `files` (name at the top of the root -> helper to copy, or
    bytes): a plain directory, or an overlay RootFS whose lower directory holds them."""
    base = sbx.rootfs("rootfs" if kind == "dir" else "lower")
    for name, content in files.items():
        if isinstance(content, Path):
            attack.install(content, base, sbx.user)
        else:
            (base / name).write_bytes(content)
            os.chown(base / name, sbx.user.uid, sbx.user.gid)
    if kind == "dir":
        return str(base)
    return {"lower": [str(base)], "upper": str(sbx.path("upper")),
            "work": str(sbx.path("work"))}


def run_unchecked(sbx: Sandboxer, step: dict[str, Any]) -> tuple[
        subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Run one step through the driver without asserting anything yet: the driver's
    process and its record (None when it printed none)."""
    done = sbx.user.run(DRIVER, input=json.dumps({"steps": [step]}), cwd=REPO, timeout=60)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done, (records[0] if records else None)


def host_paths(sbx: Sandboxer) -> list[str]:
    """Host paths that nothing a step can read about its init may name."""
    paths = {str(REPO), str(REPO.resolve()), str(VENV_BIN.parent), str(sbx.tmp),
             "/tmp/ocibuild-steps-"}
    if sbx.user.home != Path("/root"):  # "/root" is also every image's root home
        paths.add(str(sbx.user.home))
    return sorted(paths)


@pytest.mark.parametrize("root_kind", ["dir", "overlay"])
def test_stolen_control_socket_cannot_forge_messages(
        sbx: Sandboxer, root_kind: str, helpers: dict[str, Path]) -> None:
    check_steal(sbx, root_kind, helpers)


def test_insecure_step_cannot_forge_messages_either(
        sbx: Sandboxer, helpers: dict[str, Path]) -> None:
    """RUN --security=insecure gives the step every capability of its user namespace,
    still none over the builder."""
    check_steal(sbx, "dir", helpers, security="insecure")


def check_steal(sbx: Sandboxer, root_kind: str, helpers: dict[str, Path],
                **extra: Any) -> None:
    """Run steal with forged messages naming the markers and the decoy; check that
    neither was touched and that the step ended cleanly."""
    markers = attack.Markers.create(sbx.user)
    try:
        with attack.decoy(sbx.user) as victim:
            payload = attack.forged_payload(markers.forged_paths(), victim.pid, FORGED_ERROR)
            root = make_root(sbx, root_kind, {"steal": helpers["steal"], "payload": payload})
            done, record = run_unchecked(sbx, {
                "rootfs": root,
                "argv": ["/steal", "/payload", str(attack.host_pidns_inode())], **extra})
            victim_alive = victim.poll() is None
        missing = markers.missing()
    finally:
        markers.remove()
    problems = attack.damage_outside(missing, victim_alive)
    if done.returncode != 0 or "Traceback" in done.stderr:
        problems.append(f"the driver failed ({done.returncode}):\n{done.stderr}")
    if record is not None and record["error"] is not None:
        if "Traceback" in record["error"]:
            problems.append(f"the step's error is a traceback: {record['error']}")
        if FORGED_ERROR in record["error"]:
            problems.append(f"the builder reported a forged ERROR: {record['error']}")
    assert problems == [], "\n".join(problems)
    assert record is not None
    if record["error"] is None:
        assert record["exit_code"] is not None, record
        if record["exit_code"] == 0:
            assert "stolen=" in stdout_text(record), record  # the helper did run
    assert "refused: this is the host's PID namespace" not in stdout_text(record)


def _peek_sections(text: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """peek's `key=value` lines, and its files: path -> (status, content)."""
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str]] = {}
    current: str | None = None
    for line in text.split("\n"):
        if line.startswith("@@ "):
            _, path, status = line.split(" ", 2)
            current = path
            files[path] = (status, "")
        elif current is not None:
            status, content = files[current]
            files[current] = (status, content + line + "\n")
        elif "=" in line:
            for word in line.split():
                key, _, value = word.partition("=")
                fields.setdefault(key, value)
    return fields, files


@pytest.mark.parametrize("root_kind", ["dir", "overlay"])
def test_init_cannot_be_traced_and_names_no_host_path(
        sbx: Sandboxer, root_kind: str, helpers: dict[str, Path]) -> None:
    root = make_root(sbx, root_kind, {"peek": helpers["peek"]})
    (record,) = sbx.run({"rootfs": root, "argv": ["/peek"]})
    assert record["exit_code"] == 0, record
    text = stdout_text(record)
    fields, files = _peek_sections(text)
    problems = []
    for line in text.splitlines():
        if line.startswith(("ptrace_", "parent_ptrace_")) and "=-1 " not in line:
            problems.append(f"the step could ptrace its init or that init's parent: {line}")
    if not any(line.startswith("ptrace_attach=") for line in text.splitlines()):
        problems.append("peek printed no ptrace_attach line")
    if "exe" in fields:
        exe = fields["exe"]
        pythons = {os.path.realpath(sys.executable), sys.executable,
                   str(VENV_BIN / "python"), os.path.realpath(VENV_BIN / "python")}
        if exe in pythons or "python" in os.path.basename(exe):
            problems.append(f"/proc/1/exe names the host's Python: {exe}")
    elif "exe_error" not in fields:
        problems.append("peek printed neither exe= nor exe_error=")
    forbidden = host_paths(sbx)
    checked = ["/proc/1/cmdline", "/proc/1/environ"]
    if root_kind == "overlay":
        # a plain-directory root is a bind mount whose source shows in mountinfo (a
        # documented limitation); an overlay's lower, upper and work must not
        checked += ["/proc/1/mountinfo", "/proc/self/mountinfo"]
    for path in checked:
        if path not in files:
            problems.append(f"peek printed nothing for {path}")
            continue
        content = files[path][1].replace("\0", " ")
        leaked = [p for p in forbidden if p in content]
        if leaked:
            problems.append(f"{path} names host paths {leaked}:\n{content.strip()}")
    assert problems == [], "\n".join(problems)
    assert "Traceback" not in stderr_text(record)
