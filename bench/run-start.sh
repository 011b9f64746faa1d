#!/usr/bin/env bash
# Sandbox start-to-exit for `true`: hoist's runtime against `runc run` (Debian's runc) on the same
# busybox rootfs, each as one process per run, N runs (default 200); prints median and p90 wall time.
# hoist = runtime/examples/start.rs (release): overlay rootfs (busybox dir as the lower, fresh upper),
# new mount/pid/uts/ipc/net namespaces, /proc /dev /sys, /etc files, caps, seccomp, PID-1 init.
# runc = `runc spec` defaults (namespaces incl. net and cgroup, cgroup, no seccomp) on the plain dir.
# With HOIST=path/to/release/hoist, also times `hoist run --network none busybox true`.
# Needs root. Installs runc with apt if missing.
#
# Usage: bench/run-start.sh [N]
set -euo pipefail
n=${1:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v runc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null; }
(cd "$here" && cargo build --release -q -p hoist-runtime --example start)
start=${CARGO_TARGET_DIR:-$here/target}/release/examples/start

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bundle=$work/bundle
rootfs=$bundle/rootfs
mkdir -p "$rootfs"/{bin,etc,root,tmp,dev,proc,sys}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
(cd "$bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"$/"true"/' -e 's/"readonly": true/"readonly": false/' \
  "$bundle/config.json"

# Prints median and p90 (ms) of running "$@" n times.
measure() {
  local times=() i s e
  "$@" >/dev/null # warm-up
  for ((i = 0; i < n; i++)); do
    s=$(date +%s%N)
    "$@" >/dev/null
    e=$(date +%s%N)
    times+=($(((e - s) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median %.2f ms  p90 %.2f ms  (n=%d)\n", a[int((NR+1)/2)]/1000, a[int(NR*0.9)]/1000, NR}'
}

runc_once() { runc run --bundle "$bundle" "bench-$$-$RANDOM$RANDOM"; }

echo "hoist runtime (start true):  $(measure "$start" "$rootfs" true)"
echo "runc run (true):             $(measure runc_once)"
if [ -n "${HOIST:-}" ]; then
  store=$work/store
  HOIST=$HOIST bash "$here/fixtures/make-busybox.sh" "$store" >/dev/null
  echo "hoist run busybox true:      $(measure "$HOIST" --root "$store" run --network none busybox true)"
fi
