#!/bin/sh
# mmdebstrap customize hook: undo mount-debs.sh (unmount, remove the directories it
# made, which are empty again).
# Usage: unmount-debs.sh ROOT
set -eu
root=$1
list=$root/run/ocibuild-debs/mounts
tab=$(printf '\t')
while IFS=$tab read -r dir top; do
  umount "$root$dir"
  [ -n "$top" ] && find "$root$top" -depth -type d -empty -delete
done < "$list"
rm -r "$root/run/ocibuild-debs"
