#!/usr/bin/env bash
# The demo: make the offline busybox base and import it as an OCI image. No network
# is used beyond installing packages on a fresh machine.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/bootstrap.sh demo
out=${DEMO_OUT:-$top/out}
mkdir -p "$out"
bash rootfs/busybox/make.sh "$out/busybox-rootfs"
.venv/bin/ocibuild import "$out/busybox-rootfs" --tag busybox:latest --output "oci:$out/busybox"
.venv/bin/ocibuild inspect "oci:$out/busybox:latest"
