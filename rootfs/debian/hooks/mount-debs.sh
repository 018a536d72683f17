#!/bin/sh
# mmdebstrap setup hook: mount each DIR read-only at its own path inside ROOT, so
# that dpkg there finds the packages at the paths apt outside gives it.
# Usage: mount-debs.sh ROOT DIR...  (undo with unmount-debs.sh ROOT)
set -eu
root=$1; shift
mkdir -p "$root/run/ocibuild-debs"
for dir in "$@"; do
  # the topmost directory made for the mount point, removed again afterwards
  top=$dir
  while [ "$(dirname "$top")" != / ] && [ ! -e "$root$(dirname "$top")" ]; do
    top=$(dirname "$top")
  done
  [ -e "$root$top" ] && top=""
  mkdir -p "$root$dir"
  mount -o ro,bind "$dir" "$root$dir"
  printf '%s\t%s\n' "$dir" "$top" >> "$root/run/ocibuild-debs/mounts"
done
