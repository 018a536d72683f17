"""ocibuild against BuildKit (dockerd) and buildah on the same machine, as ratios.

Run as root, through `bash bench/run.sh` (which installs the peers first):

    .venv/bin/python bench/compare.py [--runs 5] [--bigctx-runs 5] [--quick]

Writes bench/RESULTS.md (and the raw samples to bench/results/raw.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.contexts import (  # noqa: E402
    BIG_CASES,
    change_one_file,
    chown_tree,
    make_context,
)
from bench.dockerd import Dockerd  # noqa: E402
from bench.engines import (  # noqa: E402
    ENGINES,
    OCIBUILD,
    Ocibuild,
    context_copy_floor,
    context_stat_floor,
    floor_sample,
)
from bench.measure import CommandFailed  # noqa: E402
from bench.pyspy_summary import summarize  # noqa: E402
from bench.report import (  # noqa: E402
    CACHED_PUSH,
    CACHED_PUSH_NO_MEMO,
    CONTEXT_KEPT,
    FLOOR,
    FRESH_CONTEXT,
    NO_MEMO,
    TIME_GOALS,
    Results,
    now_text,
    render,
)
from tests.support.registry_server import RegistryServer  # noqa: E402

# minimal: each engine's fixed cost (no base image, no RUN; two tiny COPYs)
CASES = ("minimal", "seed", "parallel", "bigctx", "workdir")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_base(work: Path) -> tuple[Path, Path]:
    """The busybox root filesystem and an OCI layout of it (busybox:latest)."""
    rootfs = work / "rootfs"
    subprocess.run(["bash", str(REPO / "rootfs/busybox/make.sh"), str(rootfs)], check=True)
    layout = work / "busybox-oci"
    subprocess.run([str(OCIBUILD), "import", str(rootfs), "--tag", "busybox:latest",
                    "--output", f"oci:{layout}"], check=True, capture_output=True)
    return rootfs, layout


def serve_base(layout: Path, work: Path, name: str) -> RegistryServer:
    registry = RegistryServer.start("http", work / name)
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                    f"oci:{layout}:latest",
                    f"docker://{registry.host}/library/busybox:latest"], check=True)
    return registry


def rotated(engines: list, i: int) -> list:
    k = i % len(engines)
    return engines[k:] + engines[:k]


def fresh_copy(ctx: Path, name: str) -> Path:
    """A new copy of the context directory (same owner, new path and inodes), which no
    engine has seen."""
    copy = ctx.parent / name
    shutil.rmtree(copy, ignore_errors=True)
    subprocess.run(["cp", "-a", str(ctx), str(copy)], check=True)
    return copy


def build_modes(engine, case: str, ctx: Path, stamp: str) -> dict:
    """One run of every mode for one engine, in an order where each mode starts from the
    state its row in RESULTS.md names."""
    engine.reset(case)
    got = {"cold": engine.build(case, ctx), "cached": engine.build(case, ctx)}
    if hasattr(engine, "forget_rebuild_memos"):
        # the engine's own cached build: its answer without the rebuild memo
        engine.forget_rebuild_memos()
        got[NO_MEMO] = engine.build(case, ctx)
    if case not in BIG_CASES:
        return got
    # every step again, the engine's other state (context it received, store) kept
    got[CONTEXT_KEPT] = engine.build(case, ctx, no_cache=True)
    change_one_file(ctx, stamp)
    got["one-file-changed"] = engine.build(case, ctx)
    copy = fresh_copy(ctx, f"{case}-fresh")
    try:
        engine.reset(case)
        got[FRESH_CONTEXT] = engine.build(case, copy)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return got


def measure_builds(res: Results, engines: list, case: str, ctx: Path, runs: int,
                   warmup: int) -> None:
    res.runs[case] = runs
    for i in range(warmup + runs):
        for engine in rotated(engines, i):
            label = "warm-up" if i < warmup else f"run {i - warmup + 1}/{runs}"
            try:
                got = build_modes(engine, case, ctx, f"{engine.name} {i}")
            except (CommandFailed, RuntimeError) as exc:
                res.failures.append(f"{case} {label} {engine.name}: {str(exc)[:300]}")
                log(f"  {engine.name} FAILED: {str(exc)[-400:]}")
                continue
            log(f"  {case} {label} {engine.name}: " + ", ".join(
                f"{m} {s.seconds:.2f}s/{s.peak_rss_mb:.0f}MB" for m, s in got.items()))
            if i >= warmup:
                for mode, sample in got.items():
                    res.add(case, mode, engine.name, sample)
        floor = floor_sample(case, res_log(ctx))
        if floor is not None and i >= warmup:
            res.add(case, "cold", FLOOR, floor)
    if case in BIG_CASES and runs > 0:
        copied = context_copy_floor(ctx, res_log(ctx))
        for mode in ("cold", CONTEXT_KEPT, "one-file-changed", FRESH_CONTEXT):
            res.add(case, mode, FLOOR, copied)


def res_log(ctx: Path) -> Path:
    return ctx.parent / "floor.log"


def measure_push(res: Results, engines: list, layout: Path, work: Path, ctx: Path,
                 runs: int, warmup: int) -> None:
    """Push the bigctx image each engine built last into a new registry, then again, then
    (ocibuild) a cached build of it with --push, answered by the rebuild memo and then by
    the engine, against (peers) one more push; and the floor of such a build, one stat
    walk of the context."""
    res.runs["push"] = runs
    for engine in engines:
        # the last bigctx build read a fresh copy: build the context pushed from once,
        # so a cached build of it starts from an engine that has seen it
        engine.build("bigctx", ctx)
    for i in range(warmup + runs):
        registry = serve_base(layout, work, f"push-registry-{i}")
        try:
            for engine in rotated(engines, i):
                ref = f"{registry.host}/bench/push-{engine.name.lower()}:latest"
                try:
                    got = {"fresh": engine.push("bigctx", ref, registry.host),
                           "again": engine.push("bigctx", ref, registry.host)}
                    if hasattr(engine, "cached_push"):
                        # the first build --push of this name leaves the memo that the
                        # same command, run again (as a CI job is), finds
                        engine.cached_push("bigctx", ctx, ref, registry.host)
                        got[CACHED_PUSH] = engine.cached_push("bigctx", ctx, ref,
                                                              registry.host)
                        got[CACHED_PUSH_NO_MEMO] = engine.cached_push(
                            "bigctx", ctx, ref, registry.host, memo=False)
                    else:
                        got[CACHED_PUSH] = engine.push("bigctx", ref, registry.host)
                except (CommandFailed, RuntimeError) as exc:
                    res.failures.append(f"push run {i} {engine.name}: {str(exc)[:300]}")
                    log(f"  {engine.name} push FAILED: {str(exc)[-400:]}")
                    continue
                log(f"  push {'warm-up' if i < warmup else i - warmup + 1} {engine.name}: "
                    + ", ".join(f"{m} {s.seconds:.2f}s" for m, s in got.items()))
                if i >= warmup:
                    for mode, sample in got.items():
                        res.add("push", mode, engine.name, sample)
            floor = context_stat_floor(ctx, res_log(ctx))
            if i >= warmup:
                res.add("push", CACHED_PUSH, FLOOR, floor)
        finally:
            registry.stop()


def layer_export(work: Path, size_mb: int) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "bench/layer_export.py"), "--size-mb",
                           str(size_mb), "--workdir", str(work)],
                          capture_output=True, text=True)
    return proc.stdout + (f"\n(exit {proc.returncode}) {proc.stderr[-800:]}"
                          if proc.returncode else "")


def push_again() -> str:
    proc = subprocess.run([sys.executable, str(REPO / "bench/push_again.py")],
                          capture_output=True, text=True, cwd=REPO)
    return proc.stdout + (f"\n(exit {proc.returncode}) {proc.stderr[-800:]}"
                          if proc.returncode else "")


def _prepare(ours: Ocibuild, case: str, mode: str, ctx: Path, stamp: str) -> list[str]:
    """Bring ocibuild's store to the state just before the build of (case, mode); the
    arguments that build adds to the cold one."""
    ours.reset(case)
    if mode != "cold":
        ours.build(case, ctx)
    if mode == "one-file-changed":
        change_one_file(ctx, stamp)
    if mode == NO_MEMO:
        ours.forget_rebuild_memos()
    if mode == CONTEXT_KEPT:
        # as in the measured runs, which follow one another: the one before left its
        # step directories in the trash (deleted only once the trash is over its budget)
        ours.build(case, ctx, no_cache=True)
        return ["--no-cache"]
    return []


def profile_worst(res: Results, ours: Ocibuild, ctxs: dict[str, Path], count: int = 2,
                  lines: int = 45, rate: int = 250,
                  chosen: list[tuple[str, str]] | None = None) -> None:
    """Profile the `count` cases nearest to (or furthest past) their goals, or the
    (case, mode) pairs `chosen`."""
    ranked = sorted(((r / TIME_GOALS[(case, mode)], r, case, mode)
                     for (case, mode) in res.samples
                     if case in ctxs and (case, mode) in TIME_GOALS
                     and mode != FRESH_CONTEXT
                     and (r := res.time_ratio(case, mode, "BuildKit"))), reverse=True)
    picked = [(r, case, mode) for _, r, case, mode in ranked[:count]]
    if chosen:
        picked = [(res.time_ratio(case, mode, "BuildKit"), case, mode)
                  for case, mode in chosen if case in ctxs]
    for r, case, mode in picked:
        ctx = ctxs[case]
        texts = []
        try:
            out = ours.home / f"pyinstrument-{case}-{mode}.txt"
            extra = _prepare(ours, case, mode, ctx, "profile 1")
            ours.profile(case, ctx, out, extra)
            texts.append("\n".join(out.read_text().splitlines()[:lines]))
            raw = ours.home / f"py-spy-{case}-{mode}.txt"
            extra = _prepare(ours, case, mode, ctx, "profile 2")
            ours.profile_all_threads(case, ctx, raw, rate, extra)
            texts.append(summarize(raw, rate))
            kept = REPO / "bench/results" / raw.name  # for another summary later
            kept.parent.mkdir(exist_ok=True)
            shutil.copyfile(raw, kept)
        except (CommandFailed, OSError) as exc:
            texts.append(f"profiling failed: {exc}")
        log(f"profiled {case} {mode}")
        res.profiles.append((case, mode, r, texts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs, small cases")
    parser.add_argument("--bigctx-runs", type=int, default=5)
    # a cached push is ~30-50 ms on a shared machine, where one run can be 20 ms off:
    # its goal (a ratio of 1.5) needs more than three (a round is ~10 s, mostly the
    # peers' fresh push)
    parser.add_argument("--push-runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--no-push", action="store_true")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile", default="",
                        help="CASE:MODE,... to profile instead of the two worst, "
                             "e.g. 'bigctx:cold,bigctx:cold, context kept'")
    parser.add_argument("--export-size-mb", type=int, default=1024)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 run, no warm-up, 2,000 small + 2 big files, "
                             "200 MB export")
    parser.add_argument("--dockerd-driver", choices=("overlay2", "vfs"), default="overlay2",
                        help="storage driver of the private dockerd (overlay2 falls back "
                             "to vfs when refused)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/RESULTS.md")
    parser.add_argument("--workdir", default="/tmp", help="parent of the scratch directory")
    parser.add_argument("--curves", type=Path,
                        help="a cost-curves run's tables (bench/cost_curves.py --out) to "
                             "include in the results")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root (dockerd and buildah run as root; ocibuild drops to "
                     "ocib-sub)")
    if args.quick:
        args.runs = args.bigctx_runs = args.push_runs = 1
        args.warmup = 0
        args.export_size_mb = 200

    Dockerd.wanted_driver = args.dockerd_driver
    started = time.monotonic()
    res = Results(started=now_text(), load=[" ".join(f"{x:.2f}" for x in os.getloadavg())])
    if args.curves is not None:
        res.curves_text = args.curves.read_text()
    work = Path(tempfile.mkdtemp(prefix="ocib-bench-", dir=args.workdir))
    os.chmod(work, 0o755)
    engines: list = []
    registry = None
    try:
        rootfs, layout = make_base(work)
        registry = serve_base(layout, work, "registry")
        for key in args.engines.split(","):
            engine = ENGINES[key](work)
            engines.append(engine)
            log(f"setting up {engine.name}")
            engine.setup(rootfs, registry.host)
            res.commands[engine.name] = engine.commands()
        ours = next((e for e in engines if isinstance(e, Ocibuild)), None)
        ctx_root = work / "contexts"
        ctx_root.mkdir()
        ctxs: dict[str, Path] = {}
        for case in args.cases.split(","):
            log(f"case {case}: making the context")
            small, big = (2000, 2) if args.quick else (20_000, 20)
            ctx = make_context(case, ctx_root, small_files=small, big_files=big)
            if ours is not None:
                chown_tree(ctx_root, ours.user.uid, ours.user.gid)
            ctxs[case] = ctx
            res.context_mb[case] = sum(p.stat().st_size for p in ctx.rglob("*")
                                       if p.is_file()) / (1 << 20)
            runs = args.bigctx_runs if case in BIG_CASES else args.runs
            measure_builds(res, engines, case, ctx, runs, args.warmup)
            save_raw(res)
        if not args.no_push and "bigctx" in ctxs:
            log("push")
            measure_push(res, engines, layout, work, ctxs["bigctx"], args.push_runs,
                         args.warmup)
            save_raw(res)
        if not args.no_push:
            log("push again against skopeo")
            res.push_again_text = push_again()
            log(res.push_again_text.strip())
        if not args.no_export:
            log("layer export")
            res.export_mb = args.export_size_mb
            res.export_text = layer_export(work, args.export_size_mb)
            log(res.export_text.strip())
        if not args.no_profile and ours is not None and "BuildKit" in res.commands:
            # a mode may hold a comma ("cold, context kept"): a pair starts at CASE:
            chosen = [tuple(p.strip().split(":", 1))
                      for p in re.split(r",(?=\s*[\w-]+:)", args.profile) if p.strip()]
            profile_worst(res, ours, ctxs, chosen=chosen)  # type: ignore[arg-type]
    finally:
        for engine in engines:
            engine.close()
        if registry is not None:
            registry.stop()
        res.seconds = time.monotonic() - started
        res.load.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
        shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(render(res))
    log(f"wrote {args.out}")
    print(args.out.read_text())
    return 0


def save_raw(res: Results) -> None:
    raw = REPO / "bench/results/raw.json"
    raw.parent.mkdir(exist_ok=True)
    raw.write_text(json.dumps({f"{c} {m}": {e: [asdict(s) for s in ss]
                                            for e, ss in per.items()}
                               for (c, m), per in res.samples.items()}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
