"""Cache poisoning: whoever can push to a shared registry cache can make every build that
imports it produce their files. A signed cache (`--cache-to ...,sign-key=`) imported
with `verify-key=` is used while its signature holds; once a layer is swapped and the
manifest re-pushed, the build refuses the cache in one line and runs the steps itself."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.request
from pathlib import Path

from tests.build.conftest import image_digest, step_states
from tests.signing.conftest import KEY_ENV, Builder, Keys, give_to
from tests.support.registry_server import RegistryServer

DOCKERFILE = "FROM busybox:latest\nRUN echo one > /one\nRUN echo two > /two\n"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
SDE = {"SOURCE_DATE_EPOCH": "1700000000"}  # steps run again make the same layers


def _request(url: str, method: str = "GET", data: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read(), dict(resp.headers)


def _push_blob(base: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, headers = _request(f"{base}/blobs/uploads/", "POST", b"")
    location = headers["Location"]
    location = location if "://" in location else base.split("/v2/")[0] + location
    sep = "&" if "?" in location else "?"
    _request(f"{location}{sep}digest={digest}", "PUT", data,
             {"Content-Type": "application/octet-stream"})
    return digest


def _evil_layer() -> tuple[bytes, str]:
    """A gzip layer holding /two = "evil", and its diffID."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        content = b"evil\n"
        info = tarfile.TarInfo("two")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    data = raw.getvalue()
    return gzip.compress(data, mtime=0), "sha256:" + hashlib.sha256(data).hexdigest()


def _poison(registry: RegistryServer, repository: str, tag: str) -> None:
    """Swap the layer of `RUN echo two` for another one, fix the record's diffID, and
    push the cache manifest again (unsigned: the attacker has no key)."""
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    base = f"http://{registry.host}/v2/{repository}"
    manifest = json.loads(_request(f"{base}/manifests/{tag}",
                                   headers={"Accept": manifest_type})[0])
    config = json.loads(_request(f"{base}/blobs/{manifest['config']['digest']}")[0])
    record = next(r for r in config["records"] if "echo two" in r["description"])
    layer, diff_id = _evil_layer()
    manifest["layers"][record["layer"]] = {"mediaType": LAYER_GZIP, "size": len(layer),
                                           "digest": _push_blob(base, layer)}
    record["diffID"] = diff_id
    config_bytes = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "size": len(config_bytes),
                          "digest": _push_blob(base, config_bytes)}
    _request(f"{base}/manifests/{tag}", "PUT", json.dumps(manifest).encode(),
             {"Content-Type": manifest_type})


def _fresh_build(builder: Builder, template: Path, name: str, ctx: Path, *args: str
                 ) -> tuple[str, str]:
    """(stderr, /two of the image) of a build on a new machine (a store of its own)."""
    out = builder.tmp / f"out-{name}"
    store = builder.new_store(template, f"store-{name}")
    proc, _ = builder.build(ctx, "-o", f"type=local,dest={out}", *args, store=store, env=SDE)
    return proc.stderr, (out / "two").read_text()


def test_a_poisoned_cache_is_refused_and_the_steps_run(
        package_builder: Builder, registry: RegistryServer, keys: Keys,
        busybox_store_template: Path) -> None:
    ctx = package_builder.tmp / "cache-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    give_to(ctx, package_builder.user)
    ref = f"{registry.host}/ci/cache:main"
    proc, _ = package_builder.build(
        ctx, "--cache-to", f"type=registry,ref={ref},mode=max,sign-key={keys.private()}",
        env={**KEY_ENV, **SDE})
    assert ", signed" in proc.stderr
    verified = f"type=registry,ref={ref},verify-key={keys.public()}"

    log, two = _fresh_build(package_builder, busybox_store_template, "trusting", ctx,
                            "--cache-from", verified)
    runs = {s: v for s, v in step_states(log).items() if "RUN" in s}
    assert set(runs.values()) == {"CACHED"} and two == "two\n", log
    good_digest = image_digest(log)

    _poison(registry, "ci/cache", "main")
    log, two = _fresh_build(package_builder, busybox_store_template, "refusing", ctx,
                            "--cache-from", verified)
    refusals = [line for line in log.splitlines() if "verify-key" in line]
    assert len(refusals) == 1 and refusals[0].startswith(
        f"--cache-from type=registry,{ref}: not used: refused by verify-key="), log
    assert refusals[0].endswith(" has no signature"), refusals
    runs = {s: v for s, v in step_states(log).items() if "RUN" in s}
    assert set(runs.values()) == {"DONE"} and two == "two\n", log
    assert image_digest(log) == good_digest

    # the same build trusting the cache blindly takes the attacker's file
    _, two = _fresh_build(package_builder, busybox_store_template, "blind", ctx,
                          "--cache-from", f"type=registry,ref={ref}")
    assert two == "evil\n"
