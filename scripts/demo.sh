#!/usr/bin/env bash
# The demo: make the offline busybox base, import it, and build fixtures/seed (three
# stages, the last one copying a file from each of the others) rootless, as an
# unprivileged user in a user namespace; then build it again from the cache. No
# registry and no network beyond installing packages on a fresh machine.
# Run as root it builds as the unprivileged user ocib-sub (made by
# scripts/test-users.sh, with a /etc/subuid range); run as a user it builds as you.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/bootstrap.sh demo
out=${DEMO_OUT:-$top/out}
mkdir -p "$out"

if [ "$(id -u)" = 0 ]; then
  bash scripts/test-users.sh
  builder=ocib-sub
  as_builder() { setpriv --reuid="$builder" --regid="$builder" --init-groups \
                   env HOME="$(getent passwd "$builder" | cut -d: -f6)" "$@"; }
else
  builder=$(id -un)
  as_builder() { "$@"; }
fi
work="$out/demo"
rm -rf "$work"
mkdir -p "$work"
[ "$(id -u)" = 0 ] && chown "$builder:" "$work"
chmod 0755 "$out" "$work"

echo "== making the busybox base root filesystem (offline, from busybox-static)"
as_builder bash rootfs/busybox/make.sh "$work/busybox-rootfs"
ocib() { as_builder "$top/.venv/bin/ocibuild" --root "$work/store" "$@"; }
echo "== importing it as busybox:latest into the store $work/store"
ocib import "$work/busybox-rootfs" --tag busybox:latest

echo "== building fixtures/seed as $builder (uid $(id -u "$builder")), rootless"
cp -r fixtures/seed "$work/seed"
[ "$(id -u)" = 0 ] && chown -R "$builder:" "$work/seed"
ocib build --progress plain -t seed:demo -o "type=oci,dest=$work/seed.oci" \
  -o "type=local,dest=$work/seed-rootfs" "$work/seed"
echo "== the image's files /a.txt and /b.txt (written by two different stages):"
cat "$work/seed-rootfs/a.txt" "$work/seed-rootfs/b.txt"
echo "== the image in the OCI layout $work/seed.oci:"
"$top/.venv/bin/ocibuild" inspect "oci:$work/seed.oci:demo"

echo "== building it again: every step comes from the cache"
ocib build --progress plain -t seed:demo "$work/seed"
