"""--add-host, --shm-size and --ulimit end to end, as the unprivileged user: what a RUN
sees (its /etc/hosts, the size of its /dev/shm, its limits), that they are part of a
RUN's cache key only when given, and that bad values are clear errors before any step."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.build.conftest import Builder, step_states, write_context
from tests.sandbox.conftest import ROOT_USER
from tests.support.paths import OCIBUILD, REPO, VENV_BIN
from tests.support.users import remove_tree

# the probe's RUN writes what it sees into /probe, which the last stage exports alone
DOCKERFILE = """\
FROM busybox:latest AS probe
RUN mkdir /probe && cat /etc/hosts > /probe/hosts \\
 && grep ' /dev/shm ' /proc/mounts > /probe/shm \\
 && (ulimit -Sn; ulimit -Hn) > /probe/nofile
FROM scratch
COPY --from=probe /probe/ /
"""
FLAGS = ("--add-host", "db.internal:10.1.2.3", "--add-host", "V6.internal=[fd00::1]",
         "--shm-size", "16m", "--ulimit", "nofile=100:200")
RUN = "[probe 2/2] RUN"
# unshare refused and Docker's default capabilities, as in `docker run`
NO_UNSHARE = [str(VENV_BIN / "python"), "-m", "tests.sandbox.no_unshare", "--docker-caps"]


def _probe(builder: Builder, name: str, *flags: str) -> tuple[dict[str, str], dict[str, str]]:
    """Build the probe with `flags`; returns what the RUN saw and each step's state."""
    ctx = builder.tmp / "ctx"
    if not ctx.exists():
        write_context(ctx, {"Dockerfile": DOCKERFILE}, builder.user)
    out = builder.tmp / name
    proc, _ = builder.build(ctx, "-o", f"type=local,dest={out}", *flags)
    seen = {f: (out / f).read_text() for f in ("hosts", "shm", "nofile")}
    states = {step.split(" RUN ")[0] + " RUN": state
              for step, state in step_states(proc.stderr).items()}
    return seen, states


def test_a_run_sees_its_hosts_shm_size_and_limits(builder: Builder) -> None:
    seen, _ = _probe(builder, "out", *FLAGS)
    host_hosts = Path("/etc/hosts").read_text()
    # the usual lines first, then one per --add-host (host names lower-cased, as BuildKit)
    assert seen["hosts"] == (host_hosts.rstrip("\n") + "\n"
                             + "10.1.2.3\tdb.internal\nfd00::1\tv6.internal\n")
    assert "size=16384k" in seen["shm"]
    assert seen["nofile"].split() == ["100", "200"]


def test_the_flags_are_in_the_cache_key_only_when_given(builder: Builder) -> None:
    plain, states = _probe(builder, "plain")
    assert states[RUN] == "DONE"
    assert plain["hosts"] == Path("/etc/hosts").read_text()
    assert "size=65536k" in plain["shm"]  # Docker's default, 64 MiB

    _, states = _probe(builder, "plain-again")
    assert states[RUN] == "CACHED"
    _, states = _probe(builder, "flags", *FLAGS)
    assert states[RUN] == "DONE"  # not the cache of the build without them
    _, states = _probe(builder, "flags-again", *FLAGS)
    assert set(states.values()) == {"CACHED"}  # the same flags: fully cached

    changed = {"host": ("--add-host", "db.internal:10.1.2.4", "hosts", "10.1.2.4\tdb"),
               "shm": ("--shm-size", "17m", "shm", "size=17408k"),
               "ulimit": ("--ulimit", "nofile=100:201", "nofile", "100\n201\n")}
    for what, (flag, value, probe, shows) in changed.items():
        flags = list(FLAGS)
        flags[flags.index(flag) + 1] = value
        seen, states = _probe(builder, f"changed-{what}", *flags)
        assert states[RUN] == "DONE", what  # a different value: the step runs again
        assert shows in seen[probe], what
    _, states = _probe(builder, "plain-last")
    assert states[RUN] == "CACHED"  # the build without flags keeps its own record


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--add-host", "db.internal", "--add-host 'db.internal': expected HOST:IP or HOST=IP"),
    ("--add-host", "db:10.1.2", "--add-host 'db:10.1.2': '10.1.2' is not an IPv4 or IPv6 "
                                "address"),
    ("--add-host", "db:host-gateway", "--add-host 'db:host-gateway': host-gateway is not "
                                      "supported"),
    ("--shm-size", "lots", "--shm-size 'lots': expected a size in bytes, or with a unit"),
    ("--ulimit", "files=10", "--ulimit 'files=10': unknown limit 'files'; known: core, cpu"),
    ("--ulimit", "nofile=200:100", "--ulimit 'nofile=200:100': the soft limit (200) is "
                                   "above the hard limit (100)"),
    ("--ulimit", "nofile=ten", "--ulimit 'nofile=ten': 'ten' is not a limit"),
])
def test_a_bad_value_is_a_clear_error_before_any_step(
        builder: Builder, flag: str, value: str, message: str) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": DOCKERFILE}, builder.user)
    proc, _ = builder.build(ctx, flag, value, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert step_states(proc.stderr) == {}, proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith(f"ocibuild: error: {message}")


def test_a_hard_limit_above_the_builders_fails_the_run_clearly(builder: Builder) -> None:
    """Rootless, a step cannot raise a hard limit above the one ocibuild runs with."""
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": DOCKERFILE}, builder.user)
    hard = int(builder.user.run(["sh", "-c", "ulimit -Hn"]).stdout)
    proc, _ = builder.build(ctx, "--ulimit", f"nofile=100:{hard + 1}", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (f"--ulimit nofile=100:{hard + 1}: cannot set it (Operation not permitted); the "
            f"hard limit ocibuild runs with is {hard}") in proc.stderr


def test_a_bare_chroot_refuses_hosts_and_shm_size_and_sets_limits(
        busybox_store_template: Path) -> None:
    """Root where unshare is refused builds in a bare chroot (tests/build/
    test_isolation_auto.py): without a mount namespace there is no /etc/hosts or
    /dev/shm of the step's own, so those flags fail the RUN clearly; limits work."""
    tmp = ROOT_USER.make_tempdir()
    try:
        store = tmp / "store"
        shutil.copytree(busybox_store_template, store, symlinks=True)
        ctx = write_context(tmp / "ctx", {"Dockerfile": "FROM busybox:latest\n"
                                          "RUN ulimit -Sn; ulimit -Hn\n"}, ROOT_USER)

        def build(*flags: str) -> subprocess.CompletedProcess[str]:
            return ROOT_USER.run([*NO_UNSHARE, OCIBUILD, "--root", store, "build",
                                  "--progress", "plain", "--isolation", "chroot", *flags,
                                  ctx], cwd=REPO)

        for flag, value in (("--add-host", "db:10.1.2.3"), ("--shm-size", "16m")):
            refused = build(flag, value)
            assert refused.returncode == 1, refused.stderr
            assert refused.stderr.rstrip().splitlines()[-1] == (
                f"ocibuild: error: [2/2] RUN ulimit -Sn; ulimit -Hn: {flag} needs a mount "
                "namespace, which this host forbids (chroot isolation without namespaces)")
        limited = build("--ulimit", "nofile=77:99")
        assert limited.returncode == 0, limited.stderr
        assert " 77\n" in limited.stderr and " 99\n" in limited.stderr
    finally:
        remove_tree(tmp)
