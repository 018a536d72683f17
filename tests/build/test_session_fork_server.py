"""A rootless build's RUN steps start from a fork server its file-op server forks
(sandbox/zygote.py: serve_from_file_op_server), in a user namespace nested in that
server's and mapped one to one onto it; where none can be had that way the build starts
one of its own, as before. A step's /proc/self/uid_map tells which one it came from: a
nested namespace maps ids to themselves, a started one to the user's host ids."""

from __future__ import annotations

import re
from pathlib import Path

from tests.build.conftest import Builder, write_context
from tests.support.paths import OCIBUILD, REPO

DOCKERFILE = "FROM busybox:latest\nRUN echo {tag}; sed 's/^/MAP /' /proc/self/uid_map\n"

# `ocibuild ARGS`, with the file-op server refusing to fork a fork server
REFUSED = """\
import sys
from ocibuild.idspace import userns
from ocibuild.idspace.userns import UsernsCallError

def refused(self):
    raise UsernsCallError("refused on purpose")

userns.Session.fork_server_channel = refused
sys.argv[0] = "ocibuild"
from ocibuild.cli import main
sys.exit(main())
"""


def _maps(log: str) -> list[tuple[int, int, int]]:
    """The uid_map lines a step printed (inside, outside, length)."""
    return [(int(a), int(b), int(c)) for a, b, c in re.findall(r"MAP +(\d+) +(\d+) +(\d+)", log)]


def _context(builder: Builder, tag: str) -> Path:
    return write_context(builder.tmp / tag, {"Dockerfile": DOCKERFILE.format(tag=tag)},
                         builder.user)


def test_steps_run_in_a_namespace_nested_in_the_file_op_servers(builder: Builder) -> None:
    proc, _ = builder.build(_context(builder, "nested"), "--no-cache")
    maps = _maps(proc.stderr)
    assert maps and all(inside == outside for inside, outside, _ in maps), proc.stderr
    assert maps[0] == (0, 0, 1)  # root there is the server's root: the user


def test_a_build_whose_server_forks_none_starts_its_own(builder: Builder) -> None:
    proc = builder.user.run(
        [Path(OCIBUILD).parent / "python", "-c", REFUSED, "--root", builder.root, "build",
         "--progress", "plain", "--no-cache", _context(builder, "started")],
        env={"PYTHONPATH": str(REPO)}, cwd=builder.tmp)
    assert proc.returncode == 0, proc.stderr
    maps = _maps(proc.stderr)
    assert maps and maps[0] == (0, builder.user.uid, 1), proc.stderr  # the host's ids


def test_each_build_of_a_process_gets_a_fork_server_of_its_own_session(
        builder: Builder) -> None:
    # the first build's fork server ended with its file-op session: the second must not
    # be handed it (nor fail on it)
    first, second = _context(builder, "first"), _context(builder, "second")
    results = builder.batch([{"context": str(first), "no_cache": True},
                             {"context": str(second), "no_cache": True}])
    assert [sorted(r) for r in results] == [["cached", "manifest", "steps"]] * 2, results
    assert [(r["steps"], r["cached"]) for r in results] == [(2, 1)] * 2  # RUNs ran
