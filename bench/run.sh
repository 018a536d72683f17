#!/usr/bin/env bash
# One command for the benchmark against BuildKit (dockerd) and buildah; writes
# bench/RESULTS.md. Run as root from anywhere; arguments go to bench/compare.py
# (e.g. --quick, --runs 7, --cases seed,parallel). `--curves` runs the cost curves
# instead (bench/cost_curves.py; its own options follow, e.g. --files 20000 --gb 0.2);
# `--all` runs the curves and then the comparison, and RESULTS.md holds both.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "bench/run.sh: run as root (the peers need it; ocibuild runs as ocib-sub)" >&2
  exit 1
fi
missing=()
for pkg in docker.io buildah docker-registry skopeo busybox-static uidmap openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  # policy-rc.d or not, the bench starts its own private dockerd, never the system one.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! id ocib-sub >/dev/null 2>&1; then
  bash scripts/test-users.sh
fi
if [ ! -x .venv/bin/ocibuild ]; then
  bash scripts/bootstrap.sh test
fi
if ! .venv/bin/python -c 'import pyinstrument' 2>/dev/null || [ ! -x .venv/bin/py-spy ]; then
  .venv/bin/pip install -q -e '.[bench]'
fi
if [ "${1:-}" = "--all" ]; then
  # the cost curves first (their own defaults), then the comparison, which puts both in
  # RESULTS.md; further arguments go to the comparison
  shift
  .venv/bin/python bench/cost_curves.py --out bench/results/curves.md
  # the curves leave gigabytes written: on disk before the short builds are timed, so
  # that neither engine's builds meet their writeback
  sync
  exec .venv/bin/python bench/compare.py --curves bench/results/curves.md "$@"
fi
if [ "${1:-}" = "--curves" ]; then
  shift
  exec .venv/bin/python bench/cost_curves.py "$@"
fi
exec .venv/bin/python bench/compare.py "$@"
