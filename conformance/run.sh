#!/usr/bin/env bash
# The differential conformance run: builds each case with current BuildKit (the docker-buildkit
# peer) and with hoist, dumps both images with the same normaliser (`hoist debug dump-image --base
# busybox:latest`), writes BuildKit's dump to conformance/golden/NAME.json and prints a
# same/different table with the diffs. `cargo test --test conformance` then checks hoist against
# these goldens without docker.
#
# Usage: conformance/run.sh [--old] [--apps] [--keep] [CASE...]
#   CASE     names under conformance/cases (default: all); with --apps, names under conformance/apps
#   --old    also build with Debian 12's docker 20.10 (old BuildKit) and show where it differs from
#            the current BuildKit goldens (goldens always follow current BuildKit)
#   --apps   the real-app cases (conformance/apps, Debian base made with mmdebstrap; slow)
#   --keep   keep the work directory (contexts, stores, dumps) and print its path
# Environment: HOIST (hoist binary; default target/debug/hoist, built first), PEERS (default
# /work/shared/peers), OLD_DOCKER (default /usr/bin/docker), OLD_DOCKERD (default /usr/sbin/dockerd).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
peers=${PEERS:-/work/shared/peers}
db="$peers/docker-buildkit"
old=0 apps=0 keep=0 cases=()
for a in "$@"; do
  case $a in
    --old) old=1 ;;
    --apps) apps=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown flag $a" >&2; exit 2 ;;
    *) cases+=("$a") ;;
  esac
done
set_dir=$here/cases
[ $apps = 1 ] && set_dir=$here/apps
if [ ${#cases[@]} = 0 ]; then
  for d in "$set_dir"/*/; do cases+=("$(basename "$d")"); done
fi

if [ -z "${HOIST:-}" ]; then
  (cd "$repo" && cargo build -q -p hoist)
  HOIST=$repo/target/debug/hoist
fi
"$db" version >/dev/null 2>&1 || bash "$peers/buildkit-up.sh"

work=$(mktemp -d /tmp/conformance.XXXXXX)
old_pid=
cleanup() {
  [ -n "$old_pid" ] && kill "$old_pid" 2>/dev/null && wait "$old_pid" 2>/dev/null || true
  if [ $keep = 1 ]; then echo "work directory: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
hs=$work/hoist-store bs=$work/buildkit-store
for s in "$hs" "$bs"; do HOIST=$HOIST bash "$repo/fixtures/make-busybox.sh" "$s" >/dev/null; done
bb_id=$("$HOIST" --root "$hs" images -q --no-trunc busybox:latest)

# The peer must build on the very same busybox (other users of the peer load theirs too).
ensure_busybox() { # DOCKER-COMMAND...
  if [ "$("$@" image inspect -f '{{.Id}}' busybox:latest 2>/dev/null)" != "$bb_id" ]; then
    "$HOIST" --root "$hs" save busybox:latest | "$@" load >/dev/null
  fi
}
ensure_busybox "$db"

# Apps need a Debian base in both stores and in the peer.
if [ $apps = 1 ]; then
  deb=$work/debian.tar
  mmdebstrap --quiet --variant=minbase bookworm "$deb" >/dev/null
  "$HOIST" --root "$hs" import --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$deb" debian:bookworm >/dev/null
  "$HOIST" --root "$hs" save -o "$work/debian-image.tar" debian:bookworm
  "$HOIST" --root "$bs" load -i "$work/debian-image.tar" >/dev/null
  "$db" load -i "$work/debian-image.tar" >/dev/null
fi

if [ $old = 1 ]; then
  od=$work/old-docker
  mkdir -p "$od"
  old_sock=unix://$od/docker.sock
  "${OLD_DOCKERD:-/usr/sbin/dockerd}" --iptables=false --bridge=none --host "$old_sock" \
    --data-root "$od/data" --exec-root "$od/exec" --pidfile "$od/pid" >"$od/log" 2>&1 &
  old_pid=$!
  olddocker() { DOCKER_HOST=$old_sock "${OLD_DOCKER:-/usr/bin/docker}" "$@"; }
  for _ in $(seq 50); do olddocker version >/dev/null 2>&1 && break; sleep 0.2; done
  ensure_busybox olddocker
fi

read_args() { # CASE_DIR -> args array
  args=()
  [ -f "$1/build.args" ] || return 0
  while read -r flag value; do
    case $flag in ''|'#'*) continue ;; esac
    args+=("$flag" "$value")
  done <"$1/build.args"
}

# dump STORE IMAGE OUT: the normalised image (apps: on the Debian base, without the paths the
# case's `volatile` file lists, whose content is the build's date)
excludes=()
dump() {
  local base=busybox:latest
  [ $apps = 1 ] && base=debian:bookworm
  "$HOIST" --root "$1" debug dump-image --base "$base" "${excludes[@]}" "$2" >"$3"
}

same=0 different=0 failed=0
table=()
for c in "${cases[@]}"; do
  dir=$set_dir/$c
  [ -f "$dir/Dockerfile" ] || { echo "run.sh: no case $c" >&2; exit 2; }
  ctx=$work/ctx/$c
  bash "$here/prepare.sh" "$dir" "$ctx"
  read_args "$dir"
  excludes=()
  if [ -f "$dir/volatile" ]; then
    while read -r p; do
      case $p in ''|'#'*) continue ;; esac
      excludes+=(--exclude "$p")
    done <"$dir/volatile"
  fi
  tag=conformance-$c
  golden=$here/golden/$c.json
  [ $apps = 1 ] && golden=$here/golden/apps/$c.json
  mkdir -p "$(dirname "$golden")" "$work/out"
  if ! "$db" build --network host -q "${args[@]}" -t "$tag" "$ctx" >"$work/out/$c.bk.log" 2>&1; then
    table+=("$(printf '%-32s %s' "$c" "BUILDKIT FAILED (see below)")")
    failed=$((failed + 1))
    sed 's/^/    /' "$work/out/$c.bk.log" | tail -20
    continue
  fi
  "$db" save "$tag" | "$HOIST" --root "$bs" load >/dev/null
  dump "$bs" "$tag" "$golden"
  "$db" rmi "$tag" >/dev/null
  if [ $old = 1 ]; then
    if DOCKER_BUILDKIT=1 olddocker build --network host -q "${args[@]}" -t "$tag-old" "$ctx" \
      >"$work/out/$c.old.log" 2>&1; then
      olddocker save "$tag-old" | "$HOIST" --root "$bs" load >/dev/null
      dump "$bs" "$tag-old" "$work/out/$c.old.json"
      if ! diff -q "$golden" "$work/out/$c.old.json" >/dev/null; then
        echo "== $c: docker 20.10 (old BuildKit) differs from current BuildKit:"
        diff -U10 --label current-buildkit --label docker-20.10 "$golden" "$work/out/$c.old.json" | tail -n +3 || true
      fi
    else
      echo "== $c: docker 20.10 failed to build:"; tail -5 "$work/out/$c.old.log"
    fi
  fi
  if ! "$HOIST" --root "$hs" build -q "${args[@]}" -t "$tag" "$ctx" >"$work/out/$c.hoist.log" 2>&1; then
    table+=("$(printf '%-32s %s' "$c" "HOIST FAILED")")
    failed=$((failed + 1))
    echo "== $c: hoist build failed:"; sed 's/^/    /' "$work/out/$c.hoist.log" | tail -20
    continue
  fi
  dump "$hs" "$tag" "$work/out/$c.hoist.json"
  if diff -q "$golden" "$work/out/$c.hoist.json" >/dev/null; then
    table+=("$(printf '%-32s %s' "$c" same)")
    same=$((same + 1))
  else
    table+=("$(printf '%-32s %s' "$c" DIFFERENT)")
    different=$((different + 1))
    echo "== $c: hoist differs from BuildKit:"
    diff -U10 --label buildkit --label hoist "$golden" "$work/out/$c.hoist.json" | tail -n +3 || true
  fi
done
echo
printf '%s\n' "${table[@]}"
echo "same: $same  different: $different  failed: $failed  (of ${#cases[@]})"
