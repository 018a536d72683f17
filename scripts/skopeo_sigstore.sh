#!/usr/bin/env bash
# Install a skopeo that signs and verifies sigstore signatures, for the signature tests,
# as .venv/bin/skopeo-sigstore (run as root). Idempotent.
#
# Why: Debian 12's skopeo (1.9) and podman are built with a Debian patch that disables
# sigstore ("Debian-local change: sigstore disabled"): they refuse every sigstoreSigned
# policy and --sign-by-sigstore-private-key. Debian 13's skopeo (1.18) has it, but needs
# glibc 2.38. So this takes skopeo and libc6 from Debian 13 with apt-get, under a
# private apt state (the machine's sources and lists are not touched), unpacks them
# under .venv/skopeo-sigstore, and runs skopeo through Debian 13's dynamic loader with
# Debian 13's libc first on the library path (gpgme and sqlite come from this system).
# Usage: scripts/skopeo_sigstore.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dest=$top/.venv/skopeo-sigstore
wrapper=$top/.venv/bin/skopeo-sigstore
if [ -x "$wrapper" ] && "$wrapper" --version >/dev/null 2>&1; then
  exit 0
fi
echo "== installing Debian 13's skopeo as .venv/bin/skopeo-sigstore"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb http://deb.debian.org/debian trixie main" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
          -o APT::Sandbox::User=root -qq)
apt-get "${apt_opts[@]}" update
(cd "$work" && apt-get "${apt_opts[@]}" download skopeo libc6)
rm -rf "$dest"
mkdir -p "$dest"
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$dest"
done
triplet=$(uname -m)-linux-gnu
libdir=$dest/usr/lib/$triplet
loader=$(find "$libdir" -maxdepth 1 -name 'ld-linux*.so.*' | head -n 1)
cat > "$wrapper" <<EOF
#!/bin/sh
# Debian 13's skopeo (sigstore enabled) on Debian 13's libc: see scripts/skopeo_sigstore.sh
exec "$loader" --library-path "$libdir:/usr/lib/$triplet:/lib/$triplet" \\
  "$dest/usr/bin/skopeo" "\$@"
EOF
chmod 755 "$wrapper"
"$wrapper" --version
