"""RESULTS.md: medians, ratios against the peers, goals, RSS, machine and commands."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Sample, median, ratio

NO_MEMO = "cached, no memo"  # ocibuild only: the same cached build without its memo
CONTEXT_KEPT = "cold, context kept"  # --no-cache right after builds of the same context
FRESH_CONTEXT = "fresh context"  # caches dropped, a new copy of the context directory
CACHED_PUSH = "cached build --push"  # ocibuild's cached build --push; peers: push again
CACHED_PUSH_NO_MEMO = "cached build --push, no memo"  # the same, the engine's (memos removed)
# (case, mode) -> highest ocibuild/BuildKit time ratio that meets the goal
TIME_GOALS: dict[tuple[str, str], float] = {
    ("seed", "cold"): 0.6, ("seed", "cached"): 0.7, ("seed", NO_MEMO): 1.0,
    ("parallel", "cold"): 0.75, ("parallel", "cached"): 0.7,
    ("bigctx", "cold"): 0.5, ("bigctx", "cached"): 0.5, ("bigctx", "one-file-changed"): 0.5,
    ("bigctx", NO_MEMO): 1.0, ("bigctx", CONTEXT_KEPT): 0.5, ("bigctx", FRESH_CONTEXT): 0.5,
    ("push", CACHED_PUSH): 1.5,
}
# (case, mode) -> highest (ocibuild - floor) / (BuildKit - floor): the time each engine
# spends above the case's unavoidable work (issue 21's goal for parallel: "overhead
# <= 0.5x BuildKit's")
OVERHEAD_GOALS: dict[tuple[str, str], float] = {("parallel", "cold"): 0.5}
BIGCTX_RSS_GOAL_MB = 80.0
PEERS = ("BuildKit", "buildah")
FLOOR = "floor"  # the case's unavoidable work alone (bench.engines.FLOOR_COMMANDS)


@dataclass
class Results:
    # (case, mode) -> engine -> samples after the warm-up
    samples: dict[tuple[str, str], dict[str, list[Sample]]] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # case -> measured runs
    export_text: str = ""
    export_mb: int = 0
    push_again_text: str = ""
    curves_text: str = ""  # bench/cost_curves.py's tables, from the same `run.sh --all`
    context_mb: dict[str, float] = field(default_factory=dict)
    profiles: list[tuple[str, str, float | None, list[str]]] = field(default_factory=list)
    commands: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0
    load: list[str] = field(default_factory=list)

    def add(self, case: str, mode: str, engine: str, sample: Sample) -> None:
        self.samples.setdefault((case, mode), {}).setdefault(engine, []).append(sample)

    def med(self, case: str, mode: str, engine: str, rss: bool = False) -> float | None:
        got = self.samples.get((case, mode), {}).get(engine, [])
        return median([s.peak_rss_mb if rss else s.seconds for s in got])

    def time_ratio(self, case: str, mode: str, peer: str,
                   engine: str = "ocibuild") -> float | None:
        peer_mode = {NO_MEMO: "cached", CACHED_PUSH_NO_MEMO: CACHED_PUSH}.get(mode, mode)
        return ratio(self.med(case, mode, engine), self.med(case, peer_mode, peer))


def _push_section(res: Results) -> list[str]:
    size = res.context_mb.get("bigctx", 0)
    goal = TIME_GOALS[("push", CACHED_PUSH)]
    out = ["", f"## Push of the bigctx image (context {size:.0f} MB) "
           "to a docker-registry on 127.0.0.1 (seconds, median)",
           "", "`fresh`: a new, empty registry each run (nothing to mount from); "
           "`again`: the same push once more (every blob already there); "
           f"`{CACHED_PUSH}`: ocibuild builds the same context again with `-t "
           "REGISTRY/REPO --push` (every step cached, every blob already there; the "
           "command run a second time, so the rebuild memo the first left answers once the "
           "registry says the tag holds the image), the "
           f"peers push once more (goal: ≤ {goal} × BuildKit's `docker push`); "
           f"`{CACHED_PUSH_NO_MEMO}`: the same build with the memos removed first (the "
           "engine's own). Floor: one lstat walk of the context by GNU find "
           "(`bench/engines.py` CONTEXT_STAT_WALK), which any build must make to know its "
           "context is unchanged and `docker push`, which builds nothing, does not.",
           "",
           "| mode | runs | ocibuild | BuildKit (docker push) | buildah | "
           "ocibuild/BuildKit | ocibuild/buildah | floor | floor/BuildKit | met |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for mode in ("fresh", "again", CACHED_PUSH, CACHED_PUSH_NO_MEMO):
        if ("push", mode) not in res.samples:
            continue
        r_bk = res.time_ratio("push", mode, "BuildKit")
        floor_mode = CACHED_PUSH if mode == CACHED_PUSH_NO_MEMO else mode
        floor = res.med("push", floor_mode, FLOOR)
        floor_bk = ratio(floor, res.med("push", floor_mode, "BuildKit"))
        met = "–"
        if mode == CACHED_PUSH and r_bk is not None:
            met = "yes" if r_bk <= goal else "**no**" + (
                f" (floor {floor_bk:.2f})" if floor_bk is not None and floor_bk >= goal
                else "")
        out.append(f"| {mode} | {res.runs.get('push', 0)} | "
                   f"{_f(res.med('push', mode, 'ocibuild'))} | "
                   f"{_f(res.med('push', mode, 'BuildKit'))} | "
                   f"{_f(res.med('push', mode, 'buildah'))} | {_f(r_bk)} | "
                   f"{_f(res.time_ratio('push', mode, 'buildah'))} | "
                   f"{_f(floor)} | {_f(floor_bk)} | {met} |")
    return out


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def _overhead_goal(goal: float | None, overhead: float | None) -> str:
    if goal is None:
        return "–"
    met = "–" if overhead is None else ("yes" if overhead <= goal else "**no**")
    return f"≤ {goal}: {met}"


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _cmd(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    distro = "unknown"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            distro = line.split("=", 1)[1].strip('"')
    repo = Path(__file__).resolve().parents[1]
    commit = _cmd(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    # the measured code: the editable install runs the tree as it is, edits included
    changed = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--",
         "ocibuild", "pyproject.toml"], capture_output=True, text=True).stdout.splitlines()
    state = (f"{len(changed)} file(s) of ocibuild/ or pyproject.toml changed since that "
             "commit when the report was written: the figures may not be the commit's"
             if changed else "ocibuild/ as committed when the report was written")
    return [f"- CPU: {os.cpu_count()} × {cpu}; memory {mem_kb / 1024 / 1024:.1f} GiB",
            f"- OS: {distro}, kernel {platform.release()}",
            f"- dockerd: {_cmd(['dockerd', '--version'])}",
            f"- buildah: {_cmd(['buildah', '--version'])}",
            f"- ocibuild: commit {commit} ({state}), Python {platform.python_version()}"]


def render(res: Results) -> str:
    out = ["# Benchmark results: ocibuild against BuildKit and buildah", "",
           f"Produced by `bash bench/run.sh` on {res.started} (took {res.seconds / 60:.1f} "
           "min). Every figure is a median over runs made in this same run, after a "
           "warm-up, with the engines' order rotated each run; ratios are ocibuild's "
           "median divided by the peer's (below 1: ocibuild is faster).", "",
           "## Machine", "", *machine(), "",
           "Load average (1, 5, 15 min) at start and end: " + " → ".join(res.load)
           + ". Other work shared the machine during this run, so single figures are "
           "noisy; the ratios are what to compare.", "",
           "## Build time (seconds, median)", "",
           "| case | mode | runs | ocibuild | BuildKit | buildah | ocibuild/BuildKit | "
           "ocibuild/buildah | goal (/BuildKit) | met |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for (case, mode) in res.samples:
        if case == "push":
            continue
        goal = TIME_GOALS.get((case, mode))
        r_bk = res.time_ratio(case, mode, "BuildKit")
        met = "–" if goal is None or r_bk is None else ("yes" if r_bk <= goal else "**no**")
        floor_bk = res.time_ratio(case, mode, "BuildKit", FLOOR)
        if met == "**no**" and floor_bk is not None and floor_bk >= goal:  # type: ignore[operator]
            met = f"**no** (floor {floor_bk:.2f})"
        out.append(f"| {case} | {mode} | {res.runs.get(case, 0)} | "
                   f"{_f(res.med(case, mode, 'ocibuild'))} | "
                   f"{_f(res.med(case, mode, 'BuildKit'))} | "
                   f"{_f(res.med(case, mode, 'buildah'))} | {_f(r_bk)} | "
                   f"{_f(res.time_ratio(case, mode, 'buildah'))} | "
                   f"{'–' if goal is None else f'≤ {goal}'} | {met} |")
    floors = [(case, mode) for (case, mode), per in res.samples.items() if FLOOR in per]
    if floors:
        out += ["", "Floor: the work a case's cold build cannot avoid, run alone by "
                "`/bin/sh` (`bench/engines.py`: for parallel, its two `sleep 2` at once; "
                "for bigctx and workdir, CONTEXT_COPY: the context's tar extracted to a new "
                "directory and hashed (openssl sha256) in one pass, the COPY's files and its "
                "layer's diffID, measured once, 370 s after the runs' last deletion, "
                "for journal-less ext4 slows creates for 6 minutes after deletions; the "
                "same figure for each mode that copies the context). No builder that copies "
                "every file can take less; when floor/BuildKit is "
                "already above a goal, that goal cannot be met in this run. In the "
                "context kept and one-file-changed modes ocibuild copies only the files "
                "changed since its last copy of the context and hard links the rest "
                "(`ocibuild/snapshot/copy_links.py`), so it can take less there.", "",
                "The overhead ratio is ocibuild's time above the floor over BuildKit's; "
                "issue 21 sets the parallel case's goal on it (overhead ≤ 0.5 × BuildKit's), "
                "beside the first runner's goal on the whole time.", "",
                "| case | mode | floor | ocibuild | BuildKit | ocibuild − floor | "
                "BuildKit − floor | floor/BuildKit | goal | overhead ratio | overhead goal |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for case, mode in floors:
            floor, ours = res.med(case, mode, FLOOR), res.med(case, mode, "ocibuild")
            peer = res.med(case, mode, "BuildKit")
            goal = TIME_GOALS.get((case, mode))
            above = _minus(peer, floor)  # BuildKit above the floor: else no ratio
            overhead = ratio(_minus(ours, floor), above) if above and above > 0 else None
            out.append(f"| {case} | {mode} | {_f(floor)} | {_f(ours)} | {_f(peer)} | "
                       f"{_f(_minus(ours, floor))} | {_f(_minus(peer, floor))} | "
                       f"{_f(res.time_ratio(case, mode, 'BuildKit', FLOOR))} | "
                       f"{'–' if goal is None else f'≤ {goal}'} | {_f(overhead)} | "
                       f"{_overhead_goal(OVERHEAD_GOALS.get((case, mode)), overhead)} |")
    out += ["", "## Peak RSS (MB, median of the runs' peaks)", "",
            "ocibuild and buildah: the largest process of the command's tree (wait4 "
            "rusage); BuildKit: dockerd's VmHWM, reset before each run "
            "(`/proc/PID/clear_refs` 5). Goal: ocibuild ≤ 80 MB on bigctx.", "",
            "| case | mode | ocibuild | dockerd (BuildKit) | buildah | goal |",
            "|---|---|---|---|---|---|"]
    for (case, mode) in res.samples:
        ours = res.med(case, mode, "ocibuild", rss=True)
        goal = ""
        if case == "bigctx" and ours is not None:
            goal = f"≤ {BIGCTX_RSS_GOAL_MB:.0f}: " + (
                "yes" if ours <= BIGCTX_RSS_GOAL_MB else "**no**")
        out.append(f"| {case} | {mode} | {_f(ours, '{:.0f}')} | "
                   f"{_f(res.med(case, mode, 'BuildKit', rss=True), '{:.0f}')} | "
                   f"{_f(res.med(case, mode, 'buildah', rss=True), '{:.0f}')} | {goal} |")
    if ("push", "fresh") in res.samples:
        out += _push_section(res)
    if res.push_again_text:
        out += ["", "## Push again against skopeo copy (`bench/push_again.py`)", "",
                "Goal: an `ocibuild push` of an image the registry already holds within 3x "
                "of `skopeo copy` of the same layout.", "", "```",
                res.push_again_text.strip(), "```"]
    if res.curves_text:
        out += ["", "## Cost curves (`bench/cost_curves.py`, run by `bash bench/run.sh --all` "
                "just before the rows above)", "", res.curves_text.strip()]
    if res.export_text:
        out += ["", "## Layer export (ocibuild, "
                f"`bench/layer_export.py --size-mb {res.export_mb}`)", "",
                "Goals: gzip ≥ 200 MB/s and zstd ≥ 100 MB/s of tar input.", "", "```",
                res.export_text.strip(), "```"]
    if res.profiles:
        out += ["", "## Profiles of the two cases nearest to (or past) their goals", "",
                "Each case profiled twice: `python -m pyinstrument -m ocibuild ... build` "
                "(the main thread only: time spent waiting there is work done in worker "
                "threads or helper processes), then `py-spy record --threads "
                "--subprocesses -f raw` summarized by `bench/pyspy_summary.py` (busy "
                "samples of every thread and process)."]
        for case, mode, r, texts in res.profiles:
            out += ["", f"### {case} {mode} (ocibuild/BuildKit {_f(r)})"]
            for text in texts:
                out += ["", "```", text.rstrip(), "```"]
    if res.failures:
        out += ["", "## Failures", ""] + [f"- {f}" for f in res.failures]
    out += ["", "## How to reproduce", "", "As root on Debian 12, from the repository:", "",
            "    bash bench/run.sh              # full run (~20-25 min)",
            "    bash bench/run.sh --quick      # smoke run: 1 run, small bigctx",
            "    bash bench/run.sh --all        # the cost curves, then the full run "
            "(~45 min)", "",
            "It installs `docker.io` and `buildah` with apt-get when missing, makes the "
            "busybox base (`rootfs/busybox/make.sh` + `ocibuild import`), serves it from "
            "a local docker-registry on 127.0.0.1 for the peers, then runs:", ""]
    for engine, cmds in res.commands.items():
        out.append(f"- {engine}:")
        out += [f"  - `{c}`" for c in cmds]
    out += ["", "Cases: `bench/cases/minimal` (`FROM scratch` and one COPY of two tiny files: "
            "each engine's fixed cost per build), `fixtures/seed`, `fixtures/parallel`, "
            "`bench/cases/bigctx/Dockerfile`, `bench/cases/workdir/Dockerfile` (bigctx's "
            "files in the usual application shape: a manifest COPY, a RUN that fills the "
            "WORKDIR, then `COPY . .` into it, merged with what the RUN made; no goal of "
            "its own); bigctx's 20,000 small files and "
            "20 × 10 MB random files are generated at run time (`bench/contexts.py`). "
            "Each row starts from a stated state, the same for every engine (the order "
            "in one run):", "",
            "- cold: the engine's caches dropped, the context it received before included "
            "(ocibuild: a fresh store; BuildKit: `docker builder prune -af`; buildah: "
            "`rmi --prune`); base image kept, unpacked; the same context directory as "
            "every run;",
            "- cached: the same build again at once;",
            f"- {NO_MEMO} (ocibuild only): the same, the rebuild memos removed first;",
            f"- {CONTEXT_KEPT} (bigctx, workdir): `--no-cache` right after those builds: every "
            "step runs again, but each engine keeps what it holds of the context "
            "(BuildKit the context it received, ocibuild its store with the context's "
            "checksums and, in its trash, its last copy of the context, whose unchanged "
            "files the COPY links instead of copying, buildah its storage); neither "
            "BuildKit nor ocibuild deletes what "
            "the build before made meanwhile: BuildKit keeps replaced cache until its "
            "garbage collector finds the cache over its cap, ocibuild keeps finished "
            "steps' directories in its trash until that is over its budget (both by "
            "default a tenth of the disk);",
            "- one-file-changed (bigctx, workdir): one small file rewritten, then the build again;",
            f"- {FRESH_CONTEXT} (bigctx, workdir): caches dropped as for cold, and the build reads "
            "a new copy (`cp -a`) of the context directory no engine has seen.", "",
            "Before every timed command, for every engine, the runner touches and frees "
            "1 GB of memory and calls `sync` (`bench/measure.py`): this machine is a VM "
            "that behaves as if it hands memory left idle back to the host, after which "
            "each page's next use costs a host fault (a cold seed build of ocibuild, 5 "
            "interleaved each: 0.190 s after 25 s of idle memory, 0.130 s right after 1 "
            "GB was touched), and no command pays for writes that something before it "
            "left to the kernel.", "",
            f"ocibuild answers an unchanged, fully cached build from its rebuild memo "
            f"(`ocibuild/rebuild_memo.py`) before its engine loads. The `{NO_MEMO}` rows "
            "show the same build with the memos removed first (the engine's own cached "
            "build, as a build with outputs or cache export takes); their "
            "ratios are against the peers' cached builds (goal ≤ 1.0 for seed and "
            "bigctx).", ""]
    return "\n".join(out)


def now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
