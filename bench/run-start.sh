#!/usr/bin/env bash
# Sandbox start-to-exit for `true`: hoist's runtime against `runc run` (Debian's runc) on the same
# busybox rootfs, each as one process per run, taking turns, N rounds (default 200); prints median and
# p90 wall time.
# hoist = runtime/examples/start.rs (release): overlay rootfs (busybox dir as the lower, fresh upper),
# new mount/pid/uts/ipc/net namespaces, /proc /dev /sys, /etc files, caps, seccomp, PID-1 init.
# runc = `runc spec` defaults (namespaces incl. net and cgroup, cgroup, no seccomp) on the plain dir.
# With HOIST=path/to/release/hoist, also times `hoist run --network none busybox true`.
# Rootless: if the user ROOTLESS_USER (default hoist-rootless) exists with a /etc/subuid range, also
# times the same `start` run as that user (via setpriv; it enters a user namespace first, as hoist).
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
chmod 755 "$work" # readable by the rootless user
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

runc_once() { runc run --bundle "$bundle" "bench-$$-$RANDOM$RANDOM"; }
hoist_once() { "$start" "$rootfs" true; }
labels=("hoist runtime (start true)" "runc run (true)")
cmds=(hoist_once runc_once)
rootless=${ROOTLESS_USER:-hoist-rootless}
if id "$rootless" >/dev/null 2>&1 && grep -q "^$rootless:" /etc/subuid; then
  cp "$start" "$work/start" && chmod 755 "$work/start"
  as_user() { setpriv --reuid="$rootless" --regid="$rootless" --init-groups env -i PATH=/usr/bin:/bin HOME=/tmp "$@"; }
  setpriv_once() { as_user /bin/true; }
  rootless_once() { as_user "$work/start" "$rootfs" true; }
  labels+=("setpriv alone (true)" "hoist runtime rootless")
  cmds+=(setpriv_once rootless_once)
fi
if [ -n "${HOIST:-}" ]; then
  store=$work/store
  HOIST=$HOIST bash "$here/fixtures/make-busybox.sh" "$store" >/dev/null
  hoist_run_once() { "$HOIST" --root "$store" run --network none busybox true; }
  labels+=("hoist run busybox true")
  cmds+=(hoist_run_once)
fi

# The tools take turns (one run of each per round, n rounds, after one warm-up round), so load from
# elsewhere on the machine falls on all of them alike; prints median and p90 (ms) of each.
declare -A times
for ((i = -1; i < n; i++)); do
  for c in "${cmds[@]}"; do
    s=$(date +%s%N)
    "$c" >/dev/null
    e=$(date +%s%N)
    ((i < 0)) || times[$c]+="$(((e - s) / 1000)) "
  done
done
for k in "${!cmds[@]}"; do
  printf '%-28s ' "${labels[$k]}:"
  printf '%s\n' ${times[${cmds[$k]}]} | sort -n |
    awk '{a[NR]=$1} END {printf "median %.2f ms  p90 %.2f ms  (n=%d)\n", a[int((NR+1)/2)]/1000, a[int(NR*0.9)]/1000, NR}'
done
