#!/usr/bin/env bash
# Make a minimal busybox root filesystem from Debian's busybox-static, offline.
# Usage: rootfs/busybox/make.sh DEST [BUSYBOX]
# BUSYBOX (default /bin/busybox) may be another architecture's static busybox (e.g. from
# busybox-static:arm64): its applet links are those this machine's busybox lists.
set -euo pipefail
dest=${1:?usage: $0 DEST [BUSYBOX]}
bb=$(realpath "${2:-/bin/busybox}")
if ldd "$bb" >/dev/null 2>&1; then
  echo "error: $bb is dynamically linked; install Debian's busybox-static" >&2
  exit 1
fi
rm -rf "$dest"
mkdir -p "$dest"
cd "$dest"
mkdir -p bin sbin usr/bin usr/sbin etc root home tmp var/tmp proc sys dev run
chmod 0700 root
chmod 1777 tmp var/tmp
install -m 0755 "$bb" bin/busybox
# One symlink per applet, at the path busybox itself names, pointing at /bin/busybox.
/bin/busybox --list-full | while read -r applet; do
  [ "$applet" = "bin/busybox" ] && continue
  mkdir -p "$(dirname "$applet")"
  ln -sf /bin/busybox "$applet"
done
cat > etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > etc/group <<'GROUP'
root:x:0:
daemon:x:1:
wheel:x:10:root
user:x:1000:
nogroup:x:65534:
GROUP
mkdir -p home/user
printf 'hosts: files dns\n' > etc/nsswitch.conf
: > etc/hosts
: > etc/resolv.conf
chmod 0644 etc/passwd etc/group etc/nsswitch.conf etc/hosts etc/resolv.conf
[ "$(id -u)" = 0 ] && chown 1000:1000 home/user || true
