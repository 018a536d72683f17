"""Transfer progress as a user sees it: `ocibuild push` / `pull` and a build that pulls
its base from the test registry show each blob's bytes (BuildKit's plain statuses,
rawjson `statuses`, a bar per blob on a terminal); a pulled base is a step that ran,
never CACHED."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from ocibuild.oci.image import load_image
from ocibuild.progress.plain import human_bytes
from tests.build.conftest import Builder, step_states, write_context
from tests.progress.terminal import Terminal
from tests.registry.conftest import BaseImages, Cli
from tests.registry.test_build_integration import push_base
from tests.support.paths import OCIBUILD
from tests.support.registry_server import Fault, Proxy, RegistryServer

STATUS = re.compile(r"#(\d+) (sha256:[0-9a-f]{64}) (\S+) / (\S+)(?: (\d+\.\d)s)?( done)?")


def _blob_lines(log: str) -> dict[str, list[tuple[str, str, bool]]]:
    """digest -> (done, total, complete) of each status line of a plain log."""
    found: dict[str, list[tuple[str, str, bool]]] = {}
    for line in log.splitlines():
        if m := STATUS.fullmatch(line):
            found.setdefault(m.group(2), []).append((m.group(3), m.group(4),
                                                     bool(m.group(6))))
    return found


def _layers(images: BaseImages, tag: str = "latest") -> list[tuple[str, int]]:
    manifest = load_image(images.layout, tag).manifest
    return [(d.digest, d.size) for d in manifest.layers]


def test_push_shows_each_blob_uploaded_in_buildkit_plain_format(
        cli: Cli, images: BaseImages, proxy: Proxy) -> None:
    ref = f"{proxy.host}/progress/push:1"
    proxy.add_fault(Fault("PUT", r"/blobs/uploads/", "slow", times=-1, rate=2 << 20))
    proc = cli.ok("push", "--progress", "plain", f"oci:{images.path}:app", ref)
    log = proc.stderr
    assert log.startswith(f"#1 push {ref}\n"), log
    manifest = load_image(images.layout, "app").manifest
    lines = _blob_lines(log)
    assert set(lines) == {d.digest for d in (manifest.config, *manifest.layers)}
    for desc in (manifest.config, *manifest.layers):
        size = human_bytes(desc.size)
        assert lines[desc.digest][-1] == (size, size, True)  # "X / X 0.4s done"
    big = max(manifest.layers, key=lambda d: d.size)
    # the slow link shows the largest layer on its way: byte counts below its size
    assert any(not done and current != total for current, total, done in lines[big.digest])
    digest = load_image(images.layout, "app").digest
    assert f"#1 pushing manifest for {ref}@{digest} done\n" in log
    assert re.search(r"\n#1 DONE \d+\.\ds\n", log) and "CACHED" not in log
    assert "blobs: " in log.splitlines()[-1]  # the summary still closes the output

    again = cli.ok("push", "--progress", "plain", f"oci:{images.path}:app", ref)
    assert not _blob_lines(again.stderr)  # every blob there already: nothing moved
    quiet = cli.ok("push", "--progress", "quiet", f"oci:{images.path}:app", ref)
    assert "#1" not in quiet.stderr


def test_a_build_that_pulls_its_base_shows_a_pull_step_never_cached(
        builder: Builder, http_registry: RegistryServer, images: BaseImages,
        tmp_path: Path) -> None:
    base = f"{http_registry.host}/progress/base:1"
    push_base(http_registry, images, base, tmp_path)
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        f"FROM {base}\nRUN echo built > /built.txt\n")}, builder.user)
    proc, _ = builder.build(ctx)
    log = proc.stderr
    assert log.startswith(f"#1 [internal] load metadata for {base}\n#1 DONE "), log
    from_step = f"[1/2] FROM {base}"
    assert step_states(log) == {f"[internal] load metadata for {base}": "DONE",
                                from_step: "DONE", "[2/2] RUN echo built > /built.txt": "DONE"}
    assert f"#2 {from_step}\n" in log and "CACHED" not in log
    digest = load_image(images.layout, "latest").digest
    assert f"#2 resolve {base}@{digest} done\n" in log
    lines = _blob_lines(log)
    layers = _layers(images)
    assert set(lines) == {d for d, _ in layers}
    for layer, size in layers:
        assert lines[layer][-1] == (human_bytes(size), human_bytes(size), True)
        assert all(m.group(1) == "2" for m in map(STATUS.fullmatch, log.splitlines())
                   if m and m.group(2) == layer)  # under the FROM step

    # the next build finds the base in the store: no registry, the FROM step is cached
    again, _ = builder.build(ctx)
    assert step_states(again.stderr)[from_step] == "CACHED"
    assert "load metadata" not in again.stderr and not _blob_lines(again.stderr)


def test_rawjson_has_statuses_with_current_and_total(
        builder: Builder, http_registry: RegistryServer, images: BaseImages,
        tmp_path: Path) -> None:
    base = f"{http_registry.host}/progress/json:1"
    push_base(http_registry, images, base, tmp_path)
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": f"FROM {base}\n"}, builder.user)
    proc, _ = builder.build("--progress", "rawjson", ctx)
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    vertexes = {v["name"]: v for line in lines for v in line.get("vertexes", [])}
    step = vertexes[f"[1/1] FROM {base}"]
    assert "cached" not in step and step["completed"] >= step["started"]
    assert f"[internal] load metadata for {base}" in vertexes
    statuses = [s for line in lines for s in line.get("statuses", [])
                if s["vertex"] == step["digest"]]
    for layer, size in _layers(images):
        mine = [s for s in statuses if s["id"] == layer]
        assert mine and all(s["total"] == size for s in mine)
        assert all(set(s) >= {"id", "vertex", "total", "current", "timestamp", "started"}
                   for s in mine)
        assert mine[-1]["current"] == size and mine[-1]["completed"] >= mine[-1]["started"]
        assert [s["current"] for s in mine] == sorted(s["current"] for s in mine)
    assert any(s["id"].startswith(f"resolve {base}@sha256:") for s in statuses)


def test_a_terminal_shows_a_bar_per_blob_while_pulling(
        cli: Cli, images: BaseImages, proxy: Proxy, http_registry: RegistryServer,
        tmp_path: Path) -> None:
    push_base(http_registry, images, f"{http_registry.host}/progress/tty:1", tmp_path)
    ref = f"{proxy.host}/progress/tty:1"
    (layer, size), = _layers(images)
    proxy.add_fault(Fault("GET", r"/blobs/sha256:", "slow", times=-1,
                          rate=max(size // 3, 1)))  # about 3 seconds for the layer
    term = Terminal()
    proc = subprocess.Popen([str(OCIBUILD), "pull", ref], env={**cli.env(), "TERM": "xterm"},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=term.slave, text=True)
    term.close_slave()
    short = layer[:19]
    bar = re.compile(rf" => => {short} (\S+) / {re.escape(human_bytes(size))} ━+ +"
                     r"\S+/s +\d+\.\ds")
    screen = term.wait_for(lambda text: bar.search(text) is not None,
                           alive=lambda: proc.poll() is None)
    assert f" => pull {ref}" in screen
    out, _ = proc.communicate(timeout=60)
    term.finish()
    assert proc.returncode == 0 and out.startswith(f"{ref}: pulled sha256:")
    final = term.text()
    assert re.search(r"\[\+\] Building \d+\.\ds \(1/1\) FINISHED", final)
    total = re.escape(human_bytes(size))
    assert re.search(rf" => => {short} {total} / {total} +\d+\.\ds", final), final
    assert not term.cursor_hidden()


def test_a_build_push_shows_its_uploads_under_exporting_to_image(
        builder: Builder, http_registry: RegistryServer) -> None:
    target = f"{http_registry.host}/progress/built:1"
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\nRUN echo pushed > /pushed.txt\n")}, builder.user)
    proc, _ = builder.build("-t", target, "--push", ctx)
    log = proc.stderr
    assert "#3 exporting to image\n" in log, log
    lines = _blob_lines(log)
    assert lines and all(m.group(1) == "3" for m in map(STATUS.fullmatch, log.splitlines())
                         if m)
    assert all(blob[-1][2] and blob[-1][0] == blob[-1][1] for blob in lines.values())
    assert re.search(rf"\n#3 pushing manifest for {re.escape(target)}@sha256:[0-9a-f]{{64}} "
                     r"done\n#3 DONE \d+\.\ds\n", log)
    assert f"pushed {target}@sha256:" in log


def test_a_tar_output_shows_the_bytes_written(builder: Builder) -> None:
    ctx = write_context(builder.tmp / "ctx", {"Dockerfile": (
        "FROM busybox:latest\nRUN echo exported > /exported.txt\n")}, builder.user)
    for kind in ("oci", "docker"):
        dest = builder.tmp / f"{kind}.tar"
        proc, _ = builder.build("-o", f"type={kind},dest={dest}", ctx)
        size = re.escape(human_bytes(dest.stat().st_size))
        assert re.search(r"\n\n#3 exporting to image\n(#3 (exporting layers|sending tarball).*\n)*"
                         rf"#3 sending tarball {size} / {size} (\d+\.\ds )?done\n"
                         r"#3 DONE \d+\.\ds\n", proc.stderr), proc.stderr
