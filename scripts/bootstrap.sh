#!/usr/bin/env bash
# Install what ocibuild needs on a fresh Debian machine (run as root), then make
# the project's virtual environment in .venv. Idempotent: a second run is quick.
# Usage: scripts/bootstrap.sh [demo|test]
set -euo pipefail
mode=${1:-demo}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# slirp4netns: each RUN step's own network namespace with a way out (without it a
# default RUN shares the host's network, with a warning); git: git sources (ADD of a
# git URL, a git build context); mmdebstrap: `ocibuild rootfs debian` (a Debian base
# from a mirror or a directory of .deb files)
demo_pkgs=(busybox-static uidmap python3-venv slirp4netns git mmdebstrap)
# pipx: docs/install.md's pipx recipe, which the docs test runs
test_pkgs=(skopeo umoci docker-registry podman apache2-utils openssl gcc libc6-dev iproute2 pipx
           docker.io  # docker.io: the container and --load tests' own dockerd
           dpkg-dev  # dpkg-scanpackages: the tests' flat repository of .deb files
           # QEMU user emulation and its binfmt_misc entries: RUN steps of other
           # architectures in the multi-platform tests (scripts/test-binfmt.sh)
           qemu-user-static binfmt-support)
pkgs=("${demo_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing Debian packages (${missing[*]}); run this as root" >&2
    exit 1
  fi
  echo "== installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's own Python: its path is readable by the unprivileged users the tests
# run the builder as (a pyenv under /root would not be).
py=/usr/bin/python3.11
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$py" -m venv .venv
fi
stamp=.venv/.installed-$mode
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "== installing Python packages ($mode)"
  .venv/bin/pip install -q --disable-pip-version-check -U pip
  if [ "$mode" = test ]; then
    .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
  else
    .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e .
  fi
  touch "$stamp"
fi
# the signature tests' skopeo: Debian 12's has sigstore disabled (see the script)
if [ "$mode" = test ]; then
  bash scripts/skopeo_sigstore.sh || echo "warning: no .venv/bin/skopeo-sigstore: the tests" \
    "in tests/signing that run skopeo will fail" >&2
fi
