#!/usr/bin/env bash
# Make a minimal Debian root filesystem tarball with mmdebstrap, from an apt mirror or
# from a local directory of .deb files, without root (mmdebstrap's unshare mode; as
# root it runs in root mode). Reproducible when SOURCE_DATE_EPOCH is set.
# Usage: rootfs/debian/make.sh [--variant minbase|apt] [--include PKG,...]
#          [--packages LIST] SUITE SOURCE DEST.tar
# SOURCE is a mirror URL (http://deb.debian.org/debian) or a directory of .deb files
# (indexed on the way).
# --packages LIST: write the installed packages ("name version" lines) to LIST.
set -euo pipefail
variant=minbase include="" packages=""
while [ $# -gt 0 ]; do
  case $1 in
    --variant) variant=$2; shift 2 ;;
    --include) include=$2; shift 2 ;;
    --packages) packages=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 3 ] || { sed -n 5,9p "$0" >&2; exit 2; }
suite=$1 source=$2 dest=$3
command -v mmdebstrap >/dev/null || {
  echo "error: mmdebstrap is not installed (Debian package mmdebstrap)" >&2; exit 1; }

# the host's resolv.conf and hostname would make the image differ from host to host
hooks=(--customize-hook='rm -f "$1/etc/hostname"; : > "$1/etc/resolv.conf"; chmod 0644 "$1/etc/resolv.conf"')
work=$(mktemp -d "${TMPDIR:-/tmp}/ocibuild-debian-XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"

if [ -d "$source" ]; then
  debs=$(cd "$source" && pwd -P)
  # A flat repository next to the packages: an index whose entries link to them, and
  # a Release naming the suite (mmdebstrap picks the Essential set of that suite)
  repo=$work/repo
  mkdir "$repo"
  for deb in "$debs"/*.deb; do
    [ -e "$deb" ] || { echo "error: $source holds no .deb files" >&2; exit 1; }
    name=$(basename "$deb")
    ln -s "$deb" "$repo/$name"
    dpkg-deb --field "$deb"
    printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$name" "$(stat -c %s "$deb")" \
      "$(sha256sum < "$deb" | cut -d' ' -f1)"
  done > "$repo/Packages"
  printf 'Date: %s\nSuite: %s\nCodename: %s\nSHA256:\n %s %s Packages\n' \
    "$(LC_ALL=C date -u -R)" "$suite" "$suite" \
    "$(sha256sum < "$repo/Packages" | cut -d' ' -f1)" "$(stat -c %s "$repo/Packages")" \
    > "$repo/Release"
  mirror="deb [trusted=yes] file://$repo ./"
  # a package's own Priority may differ from the archive's (apt says important where
  # the archive says required): minbase gets apt all the same
  include=${include:+$include,}apt
  # dpkg inside the root filesystem reads the packages at the paths apt gives it: both
  # directories appear there, read-only, while the packages are installed
  mounts=("$repo" "$debs")
  here=$(cd "$(dirname "$0")" && pwd)
  printf -v setup 'sh %q "$1"' "$here/hooks/mount-debs.sh"
  printf -v setup_dirs ' %q' "${mounts[@]}"
  hooks+=(--setup-hook="$setup$setup_dirs")
  printf -v cleanup 'sh %q "$1"' "$here/hooks/unmount-debs.sh"
  hooks+=(--customize-hook="$cleanup")
  # the image has no source it could not reach: apt there reads what a RUN gives it
  hooks+=(--customize-hook='printf "# made from local packages; add a source to use apt\n" > "$1/etc/apt/sources.list"')
else
  mirror=$source
fi
if [ -n "$packages" ]; then
  : > "$packages"
  chmod 0666 "$packages"  # unshare mode's hooks run as a subordinate id
  printf -v list '%q' "$(realpath "$packages")"
  hooks+=(--customize-hook="dpkg-query --admindir=\"\$1/var/lib/dpkg\" -W -f '\${Package} \${Version}\n' > $list")
fi
opts=(--variant="$variant" --format=tar --quiet)
# merged /usr through usr-is-merged, not the usrmerge package (which pulls in perl)
merged=/usr/share/mmdebstrap/hooks/maybe-merged-usr
[ -d "$merged" ] && opts+=(--hook-dir="$merged")
[ -n "$include" ] && opts+=(--include="$include")
mmdebstrap "${opts[@]}" "${hooks[@]}" "$suite" "$dest" "$mirror"
[ -z "$packages" ] || chmod 0644 "$packages"
