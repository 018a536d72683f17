#!/usr/bin/env bash
# Set up what the multi-platform tests need (run as root, after bootstrap.sh test):
#   - the kernel's binfmt_misc mounted, and QEMU's aarch64 handler registered with the
#     F flag (the interpreter is opened at registration, so it runs inside the
#     builder's user namespaces and chroots too);
#   - Debian's busybox-static for arm64, downloaded once into $cache, from which the
#     tests make an arm64 base image offline.
# What cannot be done here (no binfmt_misc, no Debian mirror) is a warning, never a
# failure: the tests that need it skip, saying why.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
cache=${OCIBUILD_TEST_CACHE:-/var/cache/ocibuild-tests}
binfmt=/proc/sys/fs/binfmt_misc
handler=$binfmt/qemu-aarch64

warn() { echo "warning: $*: the multi-platform tests will skip" >&2; }

register_aarch64() {
  if [ ! -e "$binfmt/register" ] && ! mount -t binfmt_misc binfmt_misc "$binfmt"; then
    warn "cannot mount binfmt_misc at $binfmt"
    return
  fi
  if [ ! -e "$handler" ] || ! grep -q '^enabled' "$handler"; then
    if command -v update-binfmts >/dev/null && [ -e /usr/share/binfmts/qemu-aarch64 ]; then
      update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 \
        || update-binfmts --import qemu-aarch64 || true
    elif [ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ]; then
      # the entry qemu-user-static's own file gives: ELF 64-bit little-endian, machine
      # 0xb7 (aarch64); flags P (keep argv[0]) and F (open the interpreter now)
      magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
      mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
      echo ":qemu-aarch64:M::$magic:$mask:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:PF" \
        > "$binfmt/register" || true
    fi
  fi
  if [ ! -e "$handler" ]; then
    warn "QEMU's aarch64 handler is not registered (is qemu-user-static installed?)"
  elif ! grep -q '^flags: .*F' "$handler"; then
    warn "$handler is registered without the F flag (steps in the builder's namespaces" \
         "cannot open its interpreter); re-register it with F"
  fi
}

download_busybox_arm64() {
  mkdir -p "$cache/debs"
  chmod 0755 "$cache" "$cache/debs"
  ls "$cache"/debs/busybox-static_*_arm64.deb >/dev/null 2>&1 && return
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  if (cd "$cache/debs" && apt-get update -qq && apt-get download -qq busybox-static:arm64) \
      >/dev/null 2>&1; then
    chmod 0644 "$cache"/debs/*.deb
  else
    warn "cannot download busybox-static:arm64 (is the Debian mirror reachable?)"
  fi
}

register_aarch64
download_busybox_arm64
