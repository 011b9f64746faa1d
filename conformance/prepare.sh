#!/usr/bin/env bash
# Makes a conformance case's build context: copies conformance/cases/NAME to DEST (without the
# harness files build.args and prepare.sh), gives every file a mode independent of the checkout's
# umask (git keeps only 644/755), then runs the case's prepare.sh inside DEST for what git cannot
# hold (hardlinks, odd modes, archives, empty directories).
#
# Usage: conformance/prepare.sh CASE_DIR DEST
set -euo pipefail
src=$(cd "$1" && pwd)
dest=$2
mkdir -p "$dest"
cp -a "$src"/. "$dest"/
rm -f "$dest/build.args" "$dest/prepare.sh" "$dest/volatile"
chmod -R u+rwX,go+rX,go-w "$dest"
if [ -f "$src/prepare.sh" ]; then
  (cd "$dest" && bash -euo pipefail "$src/prepare.sh")
fi
