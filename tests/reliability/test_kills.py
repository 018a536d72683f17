"""kill -9 at random moments of builds and pushes, and builds at the same time on one
store (issue 14's reliability suite, short version: bench/reliability.py runs 20 kills
of each). A failure names each kill's seed, moment and delay to replay it."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import kills
from tests.support.users import User, remove_tree

KILLS = 5
SEED = int(os.environ.get("OCIBUILD_KILL_SEED", "0")) or random.SystemRandom().randrange(1 << 31)


@pytest.fixture(scope="module")
def scene(sub_user: User, busybox_store_template: Path) -> Iterator[kills.Scene]:
    tmp = sub_user.make_tempdir("ocib-kills-")
    try:
        yield kills.Scene.make(sub_user, tmp, busybox_store_template)
    finally:
        remove_tree(tmp)


def _report(done: list[kills.Kill]) -> str:
    lines = [f"module seed {SEED} (OCIBUILD_KILL_SEED={SEED} replays it)"]
    for kill in done:
        lines.append(kill.replay)
        lines += [f"    {p}" for p in kill.problems]
    return "\n".join(lines)


def test_a_build_killed_at_any_moment_leaves_a_store_the_next_build_uses(
        scene: kills.Scene) -> None:
    done = [kills.kill_build(scene, n, SEED + n) for n in range(1, KILLS + 1)]
    assert not any(k.problems for k in done), _report(done)
    print(_report(done))


def test_a_push_killed_at_any_moment_is_completed_by_the_next(scene: kills.Scene) -> None:
    push = kills.PushScene.make(scene)
    done = [kills.kill_push(push, n, SEED + n) for n in range(1, KILLS + 1)]
    assert not any(k.problems for k in done), _report(done)
    print(_report(done))


def test_four_builds_at_once_on_one_store(scene: kills.Scene) -> None:
    others = scene.others()
    problems = kills.concurrent_builds(scene, others)
    assert not problems, "\n".join(problems)
