#!/usr/bin/env bash
# Create the unprivileged users the end-to-end tests run the builder as:
#   ocib-sub    with /etc/subuid and /etc/subgid ranges (full ID mapping)
#   ocib-nosub  without ranges (only its own ID maps, to root)
# and make the checkout reachable by them.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
top=$(cd "$(dirname "$0")/.." && pwd)
touch /etc/subuid /etc/subgid
for u in ocib-sub ocib-nosub; do
  id "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$u"
  sed -i "/^$u:/d" /etc/subuid /etc/subgid
done
echo "ocib-sub:200000:65536" >> /etc/subuid
echo "ocib-sub:200000:65536" >> /etc/subgid
# User-mode networking (slirp4netns, for the default network of RUN steps) opens
# /dev/net/tun as the unprivileged builder; Debian's udev makes it mode 0666 (the
# kernel only lets a process attach tun devices in network namespaces it administers),
# but some machines and container runtimes make it 0600, root only.
if [ -c /dev/net/tun ]; then
  chmod 0666 /dev/net/tun
else
  echo "warning: /dev/net/tun is missing: RUN steps cannot have user-mode networking" >&2
fi
# The test users must be able to reach the checkout, its .venv and ../shared.
d=$top
while [ "$d" != / ]; do
  perms=$(stat -c %A "$d")
  if [ "${perms:9:1}" != x ] && [ "${perms:9:1}" != t ]; then
    echo "== making $d traversable (o+x) for the test users"
    chmod o+x "$d"
  fi
  d=$(dirname "$d")
done
