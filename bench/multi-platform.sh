#!/usr/bin/env bash
# Benchmark: a two-platform build (linux/amd64 + linux/arm64, the foreign one under QEMU user
# emulation) by `hoist build --platform` and by `buildah build --platform … --manifest`, cold and warm,
# for two Dockerfiles of the same result:
#   emulated  every RUN runs on each target platform (the arm64 one through qemu-aarch64);
#   cross     the work runs once per target on the build platform (`FROM --platform=$BUILDPLATFORM`,
#             `ARG TARGETARCH`): nothing is emulated, the result is COPY'd into the target stage.
# Cold: empty tool storage (the base is pulled from a loopback registry); warm: the same build again.
# Prints a Markdown table (median of RUNS repetitions) and notes. Not a test.
#
# Usage: bench/multi-platform.sh
# Env: HOIST (default $CARGO_TARGET_DIR/release/hoist or target/release/hoist, built if missing),
#      RUNS (default 3), NO_HOIST=1 / NO_BUILDAH=1 to skip a tool, LOOPS (RUN's busy loop, default 200000).
#
# The base is the two-platform busybox of fixtures/make-busybox-multi.sh (Debian's busybox-static for
# amd64 and arm64), pushed as an image index to a throwaway registry on 127.0.0.1 (fixtures/registry.sh).
# hoist's multi-platform build (issue 14) is probed first: when this hoist cannot build two platforms,
# its rows say so and only buildah's are measured.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
hoist=${HOIST:-${CARGO_TARGET_DIR:-$repo/target}/release/hoist}
runs=${RUNS:-3}
loops=${LOOPS:-200000}
platforms=linux/amd64,linux/arm64

[ "$(dpkg --print-architecture)" = amd64 ] || { echo "multi-platform.sh: written for amd64 hosts" >&2; exit 1; }
if [ ! -x "$hoist" ]; then
  (cd "$repo" && cargo build --release --bin hoist)
fi
export DEBIAN_FRONTEND=noninteractive
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v skopeo >/dev/null || need+=(skopeo)
[ -e /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v registry >/dev/null || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash "$repo/fixtures/install-deps.sh" >/dev/null # the arm64 busybox .deb

work=$(mktemp -d /var/tmp/hoist-bench-mp.XXXXXX)
notes=$work/notes
cleanup() {
  bash "$repo/fixtures/registry.sh" stop "$work/registry" >/dev/null 2>&1 || true
  awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
: >"$notes"
note() { echo "$*" >>"$notes"; }

# binfmt_misc: both tools rely on the kernel's qemu-aarch64 entry (hoist registers it itself when
# missing; buildah does not), so make sure it is there before anything is timed.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  sed -n '/^:/p' /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
fi
note "binfmt_misc qemu-aarch64: $(tr '\n' ' ' </proc/sys/fs/binfmt_misc/qemu-aarch64)"
note "qemu: $(/usr/bin/qemu-aarch64-static --version | head -1)"

# The base: a two-platform busybox index in a loopback registry.
port=$(bash "$repo/fixtures/registry.sh" start "$work/registry")
reg=127.0.0.1:$port
HOIST=$hoist bash "$repo/fixtures/make-busybox-multi.sh" "$work/base" busybox-multi:latest >/dev/null
"$hoist" --root "$work/base" save --format oci -o "$work/base.tar" busybox-multi:latest
skopeo copy -q --all --dest-tls-verify=false "oci-archive:$work/base.tar" "docker://$reg/busybox:latest"
note "base: $(skopeo inspect --raw --tls-verify=false "docker://$reg/busybox:latest" | head -c 300)"
note "hoist: $("$hoist" --version 2>/dev/null || echo "?") ($hoist, git $(git -C "$repo" rev-parse --short HEAD))"
note "buildah: $(buildah --version)"
note "host: $(nproc) cores, $(uname -r), uptime: $(uptime)"

# The two Dockerfiles. The loop is shell arithmetic: CPU work the emulator must translate.
loop="i=0; while [ \$i -lt $loops ]; do i=\$((i+1)); done"
mkdir -p "$work/ctx/emulated" "$work/ctx/cross"
cat >"$work/ctx/emulated/Dockerfile" <<EOF
FROM $reg/busybox:latest
RUN $loop; uname -m > /arch
RUN echo built > /done
EOF
cat >"$work/ctx/cross/Dockerfile" <<EOF
FROM --platform=\$BUILDPLATFORM $reg/busybox:latest AS build
ARG TARGETARCH
RUN $loop; echo \$TARGETARCH > /arch
FROM $reg/busybox:latest
COPY --from=build /arch /arch
RUN echo built > /done
EOF

hstore=$work/hoist-store
bstore=$work/buildah
bah=(buildah --root "$bstore/root" --runroot "$bstore/run" --storage-driver overlay)
now() { date +%s.%N; }
timed() { # LOG CMD...: prints CMD's wall time in seconds
  local log=$1 s e; shift
  sync
  s=$(now); "$@" >"$log" 2>&1 || { echo "FAILED: $*" >&2; tail -20 "$log" >&2; return 1; }; e=$(now)
  echo "$e - $s" | bc
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
reset() {
  case $1 in
    hoist) rm -rf "$hstore" ;;
    buildah)
      "${bah[@]}" rmi -a -f >/dev/null 2>&1 || true
      "${bah[@]}" manifest rm "bench-$2" >/dev/null 2>&1 || true
      ;;
  esac
}
build() { # TOOL CASE LOG
  local ctx=$work/ctx/$2
  case $1 in
    hoist) timed "$3" "$hoist" --root "$hstore" build --progress plain --platform "$platforms" -t "bench-$2" "$ctx" ;;
    buildah)
      "${bah[@]}" manifest rm "bench-$2" >/dev/null 2>&1 || true
      timed "$3" "${bah[@]}" build --layers --isolation chroot --tls-verify=false --platform "$platforms" \
        --manifest "bench-$2" "$ctx"
      ;;
  esac
}

tools=()
if [ -z "${NO_HOIST:-}" ]; then
  probe=$work/hoist-probe.log
  if "$hoist" --root "$work/probe-store" build --progress plain --platform "$platforms" -t probe "$work/ctx/cross" >"$probe" 2>&1 \
    && "$hoist" --root "$work/probe-store" inspect --platform linux/arm64 probe 2>/dev/null | grep -q arm64; then
    tools+=(hoist)
  else
    note "hoist: skipped, this build cannot do a two-platform build yet: $(tail -1 "$probe")"
  fi
  rm -rf "$work/probe-store"
fi
[ -n "${NO_BUILDAH:-}" ] || tools+=(buildah)

# Sanity: the arm64 image's /arch says aarch64 (emulated: the RUN ran under QEMU) or arm64
# (cross: TARGETARCH, no emulation). Checked after each case's last build, before the next resets.
check() { # TOOL CASE
  local c m
  case $1 in
    buildah)
      c=$("${bah[@]}" from --platform linux/arm64 "bench-$2") || return 0
      m=$("${bah[@]}" mount "$c")
      note "buildah $2, arm64 image /arch: $(cat "$m/arch")"
      "${bah[@]}" umount "$c" >/dev/null; "${bah[@]}" rm "$c" >/dev/null
      ;;
    hoist)
      note "hoist $2, arm64 image /arch: $("$hoist" --root "$hstore" run --rm --platform linux/arm64 "bench-$2" cat /arch 2>&1 | tail -1)"
      ;;
  esac
}

declare -A result
for case in emulated cross; do
  for tool in "${tools[@]}"; do
    cold=(); warm=()
    for r in $(seq 1 "$runs"); do
      reset "$tool" "$case"
      cold+=("$(build "$tool" "$case" "$work/$tool-$case-cold-$r.log")")
      warm+=("$(build "$tool" "$case" "$work/$tool-$case-warm-$r.log")")
    done
    check "$tool" "$case"
    result[$tool,$case,cold]=$(median "${cold[@]}")
    result[$tool,$case,warm]=$(median "${warm[@]}")
  done
done

echo "| build ($platforms) | tool | cold (s) | warm (s) |"
echo "|---|---|---|---|"
for case in emulated cross; do
  for tool in hoist buildah; do
    if [ -n "${result[$tool,$case,cold]:-}" ]; then
      printf '| %s | %s | %.2f | %.2f |\n' "$case" "$tool" "${result[$tool,$case,cold]}" "${result[$tool,$case,warm]}"
    else
      printf '| %s | %s | skipped | skipped |\n' "$case" "$tool"
    fi
  done
done
echo
echo "Median of $runs runs; RUN loop of $loops iterations. Notes:"
sed 's/^/- /' "$notes"
