"""Runs sandbox steps as whichever user starts it (the tests start it as their test users).

Reads {"steps": [...], "stream": bool, "parallel": bool} as JSON on stdin; prints one
JSON object per step on stdout, in the order given (and, when streaming, one
{"line": ...} object per output line as it arrives). With "parallel" every step runs
at once, each in its own thread. A step object holds StepSpec fields (network, security,
...) plus "isolation", "cancel_after" (seconds) and "layer" (a path: write a gzip layer
of the overlay upper directory there with the sandbox's id mapping, and report its
entries).
{"call": {"target": "module:function", "args": ..., "forked": bool}} instead runs
run_in_userns.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from ocibuild.oci.layer import write_layer_from_overlay_upper
from ocibuild.sandbox import (
    BindMount,
    CacheMount,
    Mount,
    RootFS,
    SandboxError,
    SecretMount,
    StepSpec,
    TmpfsMount,
    current_idmap,
    run_in_userns,
    run_step,
)


def _mount(m: dict[str, Any]) -> Mount:
    kind = m["type"]
    if kind == "bind":
        return BindMount(Path(m["source"]), m["target"], m.get("readonly", True))
    if kind == "cache":
        return CacheMount(Path(m["source"]), m["target"])
    if kind == "tmpfs":
        return TmpfsMount(m["target"])
    if kind == "secret":
        return SecretMount(m["target"], data=m["data"].encode(), mode=m.get("mode", 0o400),
                           uid=m.get("uid", 0), gid=m.get("gid", 0))
    raise ValueError(kind)


def _spec(step: dict[str, Any]) -> StepSpec:
    root = step["rootfs"]
    rootfs: Path | RootFS = (
        RootFS.overlay(root["lower"], root["upper"], root["work"])
        if isinstance(root, dict) else Path(root))
    return StepSpec(rootfs=rootfs, argv=step["argv"], env=step.get("env", {}),
                    cwd=step.get("cwd", "/"), user=step.get("user", ""),
                    mounts=[_mount(m) for m in step.get("mounts", [])],
                    network=step.get("network", "default"),
                    security=step.get("security", "sandbox"),
                    extra_hosts=[tuple(h) for h in step.get("extra_hosts", [])],
                    shm_size=step.get("shm_size"),
                    ulimits=[tuple(u) for u in step.get("ulimits", [])])


def _layer_entries(upper: str, path: str) -> list[dict[str, Any]]:
    with open(path, "wb") as out:
        write_layer_from_overlay_upper(Path(upper), out, id_map=current_idmap())
    with tarfile.open(path) as tar:
        return [{"name": m.name, "uid": m.uid, "gid": m.gid, "type": m.type.decode()}
                for m in tar.getmembers()]


def run(step: dict[str, Any], stream: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"stdout": [], "stderr": [], "error": None}

    def sink(name: str):  # noqa: ANN202
        def take(line: bytes) -> None:
            text = line.decode(errors="replace")
            record[name].append([time.monotonic(), text])
            if stream:
                print(json.dumps({"line": text, "stream": name}), flush=True)
        return take

    cancel = threading.Event()
    if step.get("cancel_after") is not None:
        def fire() -> None:
            record["cancel_time"] = time.monotonic()
            cancel.set()
        threading.Timer(step["cancel_after"], fire).start()
    record["start"] = time.monotonic()
    try:
        result = run_step(_spec(step), on_stdout=sink("stdout"), on_stderr=sink("stderr"),
                          isolation=step.get("isolation", "userns"), cancel=cancel)
        record.update(exit_code=result.exit_code, signal=result.signal,
                      cancelled=result.cancelled, hint=result.hint,
                      description=result.description)
    except SandboxError as e:
        record["error"] = e.message
    record["end"] = time.monotonic()
    if step.get("layer") and record["error"] is None:
        record["layer"] = _layer_entries(step["rootfs"]["upper"], step["layer"])
    return record


def call(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("hold"):  # what a forked helper must not keep of its caller
        os.open(request["hold"], os.O_RDONLY)
        signal.signal(signal.SIGUSR1, lambda *_: None)
    idmap = current_idmap()
    record: dict[str, Any] = {"uids": [[r.container, r.host, r.length] for r in idmap.uids]}
    try:
        record["result"] = run_in_userns(request["target"], request["args"],
                                         forked=request.get("forked", False))
    except SandboxError as e:
        record["error"] = e.message
    return record


def main() -> None:
    request = json.load(sys.stdin)
    if "call" in request:
        print(json.dumps(call(request["call"])), flush=True)
        return
    stream = request.get("stream", False)
    if request.get("parallel"):
        records: list[dict[str, Any]] = [{} for _ in request["steps"]]

        def run_into(index: int, step: dict[str, Any]) -> None:
            records[index] = run(step, stream)

        threads = [threading.Thread(target=run_into, args=item)
                   for item in enumerate(request["steps"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for record in records:
            print(json.dumps(record), flush=True)
        return
    for step in request["steps"]:
        print(json.dumps(run(step, stream)), flush=True)


if __name__ == "__main__":
    main()
