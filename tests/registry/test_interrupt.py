"""Ctrl-C during a push or a pull over a slow link stops it at once: the transfers in
flight end at their next chunk instead of finishing their blobs first."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ocibuild.oci.image import load_image
from ocibuild.oci.layout import ImageLayout
from tests.registry.conftest import BaseImages, Cli
from tests.registry.images import derive
from tests.support.paths import OCIBUILD
from tests.support.registry_server import Fault, Proxy

RATE = 256 << 10  # bytes per second: the big layer takes ~16 s over this link


def _big_image(images: BaseImages) -> tuple[str, int]:
    """An image with a 4 MiB layer that does not compress; its layer's digest, size."""
    derive(images.layout, "latest", "big", {"big.bin": os.urandom(4 << 20)})
    layer = load_image(images.layout, "big").manifest.layers[-1]
    return layer.digest, layer.size


def _interrupted(cli: Cli, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    proc = subprocess.Popen([str(OCIBUILD), *args], env=cli.env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    time.sleep(2.0)  # well into the blob's transfer
    assert proc.poll() is None, proc.communicate()
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(args, proc.returncode, out, err), \
        time.monotonic() - started


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_ctrl_c_stops_a_slow_transfer_at_once(direction: str, proxy: Proxy,
                                              images: BaseImages, cli: Cli,
                                              tmp_path: Path) -> None:
    digest, size = _big_image(images)
    assert size / RATE > 12, "the layer must take long over the slow link"
    ref = f"{proxy.host}/interrupt/{direction}:1"
    if direction == "push":
        proxy.add_fault(Fault("PUT", r"/blobs/uploads/", "slow", times=-1, rate=RATE))
        proxy.add_fault(Fault("PATCH", r"/blobs/uploads/", "slow", times=-1, rate=RATE))
        args = ("push", f"oci:{images.path}:big", ref)
    else:
        cli.ok("push", f"oci:{images.path}:big", ref)
        proxy.add_fault(Fault("GET", rf"/blobs/{digest}", "slow", times=-1, rate=RATE))
        args = ("pull", ref, "--output", f"oci:{tmp_path / 'pulled'}")
    proc, took = _interrupted(cli, *args)
    assert took < 4, f"{direction} took {took:.1f} s to stop after Ctrl-C"
    assert proc.returncode == 130, proc.stderr
    assert "ocibuild: interrupted" in proc.stderr and "Traceback" not in proc.stderr
    if direction == "pull":  # nothing named, nothing half-written
        layout = ImageLayout.open(tmp_path / "pulled")
        assert layout.tags() == {} and not layout.has_blob(digest)
        assert not [n for n in os.listdir(layout.path) if n.startswith(".tmp-")]
