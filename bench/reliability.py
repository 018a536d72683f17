"""The long version of tests/reliability/test_kills.py: kill -9 at 20 random moments of a
build and of a push, and rounds of 4 builds at once on one store.

After each kill: `ocibuild cache check` finds nothing but the killed process's
leftovers, the output is absent or a whole OCI layout (skopeo and umoci read it, every
blob matches its digest), the next build gives the image an uninterrupted build gives
(the next push completes the image in the registry), and then the store checks clean.
Prints one line per kill (its seed, moment, delay; a failing one's problems below it)
and "N/20 recovered" per loop; exits 1 if any kill or round failed.

Runs as root with the test users made (scripts/test-users.sh); builds run as ocib-sub.

Usage: .venv/bin/python bench/reliability.py [--kills 20] [--rounds 5] [--seed N]
                                             [--only build|push|concurrent]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.reliability import kills  # noqa: E402
from tests.support.users import SUB_USER, User, remove_tree  # noqa: E402


def _template(work: Path) -> Path:
    """A store holding busybox:latest, made as the suite makes it."""
    rootfs = work / "rootfs"
    subprocess.run(["bash", str(REPO / "rootfs/busybox/make.sh"), str(rootfs)], check=True,
                   capture_output=True)
    return kills.template_store(rootfs, work / "template")


def _loop(title: str, count: int, run: object) -> bool:
    started = time.monotonic()
    done: list[kills.Kill] = []
    for number in range(1, count + 1):
        kill = run(number)  # type: ignore[operator]
        done.append(kill)
        print(("  ok   " if not kill.problems else "  FAIL ") + kill.replay, flush=True)
        for problem in kill.problems:
            print(f"         {problem}", flush=True)
    recovered = sum(not k.problems for k in done)
    moments = Counter(k.moment for k in done)
    print(f"{title}: {recovered}/{count} recovered ({time.monotonic() - started:.0f} s; "
          + ", ".join(f"{m} {n}" for m, n in sorted(moments.items())) + ")", flush=True)
    return recovered == count


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 4 concurrent builds")
    parser.add_argument("--seed", type=int, default=0, help="replay a run (0: a new seed)")
    parser.add_argument("--only", choices=("build", "push", "concurrent"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (builds run as the test user ocib-sub)")
    seed = args.seed or random.SystemRandom().randrange(1, 1 << 31)
    print(f"seed {seed} (--seed {seed} replays this run)", flush=True)
    user = User.lookup(SUB_USER)
    work = Path(tempfile.mkdtemp(prefix="ocib-bench-reliability-"))
    os.chmod(work, 0o755)
    tmp = user.make_tempdir("ocib-bench-kills-")
    ok = True
    try:
        scene = kills.Scene.make(user, tmp, _template(work))
        print(f"reference build: {scene.seconds:.2f} s, {scene.expected}", flush=True)
        if args.only in (None, "build"):
            ok &= _loop("kill -9 during a build", args.kills,
                        lambda n: kills.kill_build(scene, n, seed + n))
        if args.only in (None, "push"):
            push = kills.PushScene.make(scene)
            print(f"reference push: {push.seconds:.2f} s, {len(push.blobs)} blobs", flush=True)
            ok &= _loop("kill -9 during a push", args.kills,
                        lambda n: kills.kill_push(push, n, seed + n))
        if args.only in (None, "concurrent"):
            others = scene.others()
            good = 0
            for number in range(1, args.rounds + 1):
                problems = kills.concurrent_builds(scene, others, name=f"concurrent-{number}")
                good += not problems
                print(("  ok   " if not problems else "  FAIL ") + f"round {number}", flush=True)
                for problem in problems:
                    print(f"         {problem}", flush=True)
            print(f"4 builds at once on one store: {good}/{args.rounds} rounds correct",
                  flush=True)
            ok &= good == args.rounds
    finally:
        remove_tree(tmp)
        remove_tree(work)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
