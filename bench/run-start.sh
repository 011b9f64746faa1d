#!/usr/bin/env bash
# Sandbox start-to-exit: `hoist run busybox true` against `runc run` (Debian's runc) on the same busybox
# rootfs, each run N times (default 200) in a loop; prints the median and p90 wall time per run.
# Needs root. Installs runc (apt) if missing; builds hoist in release mode.
#
# Usage: bench/run-start.sh [N]
set -euo pipefail
n=${1:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v runc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null; }
(cd "$here" && cargo build --release -q)
target=${CARGO_TARGET_DIR:-$here/target}
hoist=$target/release/hoist

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
store=$work/store
HOIST=$hoist bash "$here/fixtures/make-busybox.sh" "$store" >/dev/null

# runc's bundle: the same busybox rootfs, extracted from the image.
bundle=$work/bundle
mkdir -p "$bundle/rootfs"
"$hoist" --root "$store" export busybox | tar -x -C "$bundle/rootfs"
(cd "$bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"$/"true"/' -e 's/"readonly": true/"readonly": false/' \
  "$bundle/config.json"

# Prints median and p90 (ms) of running "$@" n times.
measure() {
  local times=() i s e
  for ((i = 0; i < n; i++)); do
    s=$(date +%s%N)
    "$@" >/dev/null
    e=$(date +%s%N)
    times+=($(((e - s) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %.2f ms  p90 %.2f ms  (n=%d)\n", a[int((NR+1)/2)]/1000, a[int(NR*0.9)]/1000, NR}'
}

runc_once() { runc run --bundle "$bundle" "bench-$$-$RANDOM$RANDOM"; }

echo "hoist run --network none busybox true: $(measure "$hoist" --root "$store" run --network none busybox true)"
echo "hoist run --network host busybox true: $(measure "$hoist" --root "$store" run --network host busybox true)"
echo "runc run (same rootfs, true):           $(measure runc_once)"
