"""Cost curves: how build time and peak memory grow with the context, ocibuild against
BuildKit (buildah optional), on the same machine in one run.

Run as root through `bash bench/run.sh --curves [options]` (same setup as the comparison:
private dockerd, busybox from a local registry, ocibuild as ocib-sub).

Two series of points, each a context of its own made at run time and deleted after it
(with the engines' caches) so that disk use stays at one point's worth:

- files: N small files (64 B to 1 KiB, 200 a directory), by default 20k, 100k, 300k;
- data: a few big random files (4 of them) totalling 0.2, 1 and 4 GB by default.

Each point's Dockerfile is bigctx's shape: `COPY . /ctx`, then a RUN touching one file.
Per point and engine: cold (caches dropped, as compare.py's cold), then cached; ocibuild
also its cached build without the rebuild memo. Peak RSS as compare.py measures it (wait4
of ocibuild's process tree; dockerd's VmHWM for BuildKit).

Before each cold build, memory for the context's copies is touched and freed again
(measure.prime_memory: on this VM, memory left idle goes back to the host and costs a
host fault per page on its next use, which doubled the 4 GB point's time depending on
what the bench did just before). Each data point also has one more ocibuild cold build
after IDLE_SECONDS of idle memory, to show what that costs.

Linearity: time per unit (per file, per GB) at the largest point divided by that at the
smallest: at most ~1.3 means the cost grows linearly or better (the fixed cost of a build
makes small points dearer per unit, so a value below 1 is expected).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.compare import log, make_base, rotated, serve_base  # noqa: E402
from bench.contexts import chown_tree  # noqa: E402
from bench.engines import ENGINES, Ocibuild  # noqa: E402
from bench.measure import (  # noqa: E402
    CommandFailed,
    Sample,
    median,
    prime_memory,
    unprimed,
)
from bench.report import NO_MEMO  # noqa: E402

CASE = "curve"
DOCKERFILE = "FROM busybox:latest\nCOPY . /ctx\nRUN touch /ctx/marker\n"
FILES_PER_DIR = 200
BIG_FILES = 4
LINEAR_LIMIT = 1.3
RSS_LIMIT_MB = 80.0
GB = 1_000_000_000
# memory primed before a cold build: BuildKit holds the context up to three times (its
# copy of the context, the COPY's snapshot, the layer unpacked into dockerd's store)
PRIME_COPIES, PRIME_EXTRA = 3, 512 << 20
IDLE_SECONDS = 30
IDLE_COLD = f"cold, memory idle {IDLE_SECONDS} s"


def make_files_context(ctx: Path, count: int, rng: random.Random) -> int:
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "marker").write_text("marker\n")
    total = 0
    for i in range(count):
        directory = ctx / "small" / f"d{i // FILES_PER_DIR:04d}"
        if i % FILES_PER_DIR == 0:
            directory.mkdir(parents=True)
        data = rng.randbytes(rng.randrange(64, 1024))
        (directory / f"f{i:06d}").write_bytes(data)
        total += len(data)
    return total


def make_data_context(ctx: Path, size: int) -> int:
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "marker").write_text("marker\n")
    chunk = 4 << 20
    for i in range(BIG_FILES):
        left = size // BIG_FILES
        with open(ctx / f"r{i}.bin", "wb") as f:
            while left > 0:
                f.write(os.urandom(min(chunk, left)))
                left -= chunk
    return size


def measure_point(engines: list, ctx: Path, runs: int, index: int, size: int,
                  idle_cold: bool) -> dict:
    """mode -> engine -> samples, for one context of `size` bytes; with `idle_cold`,
    ocibuild's IDLE_COLD sample too."""
    got: dict[str, dict[str, list[Sample]]] = {}
    for i in range(runs):
        for engine in rotated(engines, index + i):
            try:
                engine.reset(CASE)
                touched, took = prime_memory(PRIME_COPIES * size + PRIME_EXTRA)
                log(f"  memory primed: {touched >> 20} MB in {took:.1f} s")
                one = {"cold": engine.build(CASE, ctx), "cached": engine.build(CASE, ctx)}
                if hasattr(engine, "forget_rebuild_memos"):
                    engine.forget_rebuild_memos()
                    one[NO_MEMO] = engine.build(CASE, ctx)
            except (CommandFailed, RuntimeError) as exc:
                log(f"  {engine.name} FAILED: {str(exc)[-600:]}")
                continue
            log(f"  {engine.name}: " + ", ".join(
                f"{m} {s.seconds:.2f}s/{s.peak_rss_mb:.0f}MB" for m, s in one.items()))
            for mode, sample in one.items():
                got.setdefault(mode, {}).setdefault(engine.name, []).append(sample)
    ours = next((e for e in engines if isinstance(e, Ocibuild)), None)
    if idle_cold and ours is not None:
        ours.reset(CASE)
        time.sleep(IDLE_SECONDS)
        try:
            with unprimed():
                sample = ours.build(CASE, ctx)
        except (CommandFailed, RuntimeError) as exc:
            log(f"  {ours.name} ({IDLE_COLD}) FAILED: {str(exc)[-600:]}")
        else:
            log(f"  {ours.name}: {IDLE_COLD} {sample.seconds:.2f}s")
            got[IDLE_COLD] = {ours.name: [sample]}
    return got


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def _med(point: dict, mode: str, engine: str, rss: bool = False) -> float | None:
    samples = point["samples"].get(mode, {}).get(engine, [])
    return median([s.peak_rss_mb if rss else s.seconds for s in samples])


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def render(points: list[dict], engines: list[str], runs: int) -> str:
    peer = "BuildKit"
    out = [f"Runs per point: {runs} (the median of them; with 1, a single sample). "
           "Times in seconds, peak RSS in MB; ratio = ocibuild/BuildKit. "
           f"`{NO_MEMO}`: ocibuild's cached build with its rebuild memo removed "
           "(ratio against BuildKit's cached). Before each cold build, "
           f"{PRIME_COPIES} x the context's size + {PRIME_EXTRA >> 20} MB of memory is "
           "touched and freed again (at most what is free but 1 GB), for every engine: "
           "this machine is a VM whose idle memory goes back to the host, and a page's "
           "next use then costs a fault in the host (see the last table).", "",
           "| series | point | context MB | ocibuild cold | BuildKit cold | ratio | "
           "ocibuild cached | BuildKit cached | ratio | ocibuild no memo | ratio | "
           "ocibuild RSS cold/cached/no memo | BuildKit RSS cold/cached |"
           + (" buildah cold | buildah cached |" if "buildah" in engines else ""),
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
           + ("---|---|" if "buildah" in engines else "")]
    for p in points:
        oc, bc = _med(p, "cold", "ocibuild"), _med(p, "cold", peer)
        oh, bh = _med(p, "cached", "ocibuild"), _med(p, "cached", peer)
        on = _med(p, NO_MEMO, "ocibuild")
        rss = "/".join(_f(_med(p, m, "ocibuild", True), "{:.0f}")
                       for m in ("cold", "cached", NO_MEMO))
        brss = "/".join(_f(_med(p, m, peer, True), "{:.0f}") for m in ("cold", "cached"))
        row = (f"| {p['series']} | {p['label']} | {p['bytes'] / (1 << 20):.0f} | {_f(oc)} | "
               f"{_f(bc)} | {_f(_ratio(oc, bc))} | {_f(oh)} | {_f(bh)} | "
               f"{_f(_ratio(oh, bh))} | {_f(on)} | {_f(_ratio(on, bh))} | {rss} | {brss} |")
        if "buildah" in engines:
            row += (f" {_f(_med(p, 'cold', 'buildah'))} |"
                    f" {_f(_med(p, 'cached', 'buildah'))} |")
        out.append(row)
    idle = [p for p in points if IDLE_COLD in p["samples"]]
    if idle:
        out += ["", f"ocibuild's cold build once more after {IDLE_SECONDS} s of idle memory "
                "(not primed; no goal: what a build needing gigabytes of new page cache pays "
                "on this VM when its memory was handed back to the host):", "",
                f"| series | point | ocibuild cold (primed) | {IDLE_COLD} | idle / primed |",
                "|---|---|---|---|---|"]
        for p in idle:
            primed, cold_idle = _med(p, "cold", "ocibuild"), _med(p, IDLE_COLD, "ocibuild")
            out.append(f"| {p['series']} | {p['label']} | {_f(primed)} | {_f(cold_idle)} | "
                       f"{_f(_ratio(cold_idle, primed))} |")
    out += ["", f"Growth of time per unit from the smallest to the largest point "
            f"(≤ {LINEAR_LIMIT}: linear or better), and the largest growth from one point "
            "to the next (the fixed cost of a build flatters the smallest point):", "",
            "| series | unit | engine | mode | per unit, smallest | per unit, largest | "
            "growth | linear | largest step growth |", "|---|---|---|---|---|---|---|---|---|"]
    for series, unit in (("files", "1k files"), ("data", "GB")):
        pts = [p for p in points if p["series"] == series]
        if len(pts) < 2:
            continue
        lo, hi = pts[0], pts[-1]
        for engine in engines:
            for mode in ("cold", "cached", NO_MEMO, IDLE_COLD):
                a, b = _med(lo, mode, engine), _med(hi, mode, engine)
                if a is None or b is None:
                    continue
                per_lo, per_hi = a / lo["units"], b / hi["units"]
                growth = per_hi / per_lo
                linear = "yes" if growth <= LINEAR_LIMIT else (
                    "no (no goal)" if mode == IDLE_COLD else "**no**")
                out.append(f"| {series} | {unit} | {engine} | {mode} | {per_lo:.3f} s | "
                           f"{per_hi:.3f} s | {growth:.2f} | {linear} | "
                           f"{_f(_step_growth(pts, mode, engine))} |")
    peaks = [s.peak_rss_mb for p in points for per in p["samples"].values()
             for s in per.get("ocibuild", [])]
    if peaks:
        worst = max(peaks)
        out += ["", f"ocibuild's largest peak RSS over every point and mode: {worst:.0f} MB "
                f"(goal ≤ {RSS_LIMIT_MB:.0f} MB: "
                f"{'met' if worst <= RSS_LIMIT_MB else '**not met**'})."]
    return "\n".join(out)


def _step_growth(pts: list[dict], mode: str, engine: str) -> float | None:
    per = [(t / p["units"]) for p in pts if (t := _med(p, mode, engine)) is not None]
    steps = [b / a for a, b in zip(per, per[1:], strict=False) if a]
    return max(steps) if steps else None


def save(points: list[dict], path: Path) -> None:
    path.write_text(json.dumps([{**p, "samples": {m: {e: [asdict(s) for s in ss]
                                                      for e, ss in per.items()}
                                                  for m, per in p["samples"].items()}}
                                for p in points], indent=1))


def load_points(path: Path) -> list[dict]:
    points = json.loads(path.read_text())
    for p in points:
        p["samples"] = {m: {e: [Sample(**s) for s in ss] for e, ss in per.items()}
                        for m, per in p["samples"].items()}
    return points


def parse_list(text: str, kind: type) -> list:
    return [kind(x) for x in text.split(",") if x]


def run_points(args: argparse.Namespace, engines: list, work: Path) -> list[dict]:
    ours = next((e for e in engines if isinstance(e, Ocibuild)), None)
    plan = ([("files", f"{n // 1000}k files", n) for n in parse_list(args.files, int)]
            + [("data", f"{g:g} GB", g) for g in parse_list(args.gb, float)])
    points = []
    for index, (series, label, amount) in enumerate(plan):
        ctx = work / "contexts" / f"{series}-{index}"
        log(f"point {label}: making the context")
        if series == "files":
            size = make_files_context(ctx, amount, random.Random(index))
            units = amount / 1000
        else:
            size = make_data_context(ctx, int(amount * GB))
            units = amount
        if ours is not None:
            chown_tree(ctx.parent, ours.user.uid, ours.user.gid)
        log(f"point {label}: {size / (1 << 20):.0f} MB, measuring")
        samples = measure_point(engines, ctx, args.runs, index, size, series == "data")
        points.append({"series": series, "label": label, "bytes": size, "units": units,
                       "samples": samples})
        for engine in engines:
            engine.reset(CASE)  # the stores and caches of this point: disk for the next
        shutil.rmtree(ctx)
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="20000,100000,300000",
                        help="small-file counts, comma separated")
    parser.add_argument("--gb", default="0.2,1,4", help="data sizes in GB, comma separated")
    parser.add_argument("--engines", default="ocibuild,buildkit")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/curves.md")
    parser.add_argument("--workdir", default="/tmp", help="parent of the scratch directory")
    parser.add_argument("--render", type=Path,
                        help="only print the tables again from a run's saved points (JSON)")
    args = parser.parse_args()
    if args.render:
        points = load_points(args.render)
        names = sorted({e for p in points for per in p["samples"].values() for e in per},
                       key=["ocibuild", "BuildKit", "buildah"].index)
        print(render(points, names, args.runs))
        return 0
    if os.geteuid() != 0:
        parser.error("run as root (dockerd runs as root; ocibuild drops to ocib-sub)")
    started = time.monotonic()
    load = [" ".join(f"{x:.2f}" for x in os.getloadavg())]
    work = Path(tempfile.mkdtemp(prefix="ocib-curves-", dir=args.workdir))
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
        (work / "contexts").mkdir()
        points = run_points(args, engines, work)
    finally:
        for engine in engines:
            engine.close()
        if registry is not None:
            registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    load.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
    text = (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
            f"(took {(time.monotonic() - started) / 60:.1f} min; load average "
            f"{' → '.join(load)}).\n\n" + render(points, [e.name for e in engines], args.runs))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    save(points, args.out.with_suffix(".json"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
