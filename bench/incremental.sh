#!/usr/bin/env bash
# Benchmark: incremental rebuilds of the testdata/incremental apps, hoist vs the current BuildKit peer
# (/work/shared/peers/docker-buildkit: docker 28 + buildx + BuildKit 0.25), side by side.
# Cases: the pip-style and the npm-style app, each with its classic Dockerfile (COPY the dependency
# list, install, COPY . .) and its Dockerfile.bind (install with RUN --mount=type=bind of the list and
# a type=cache directory). The install step simulates a second of work (no network).
# For each case and tool: a cold build (hoist: a fresh store holding only busybox; BuildKit: a nonce in
# the tools script, so no earlier run's cache answers), then RUNS times: a rebuild after one source
# file was edited, and a rebuild with nothing changed. Checks from --progress=plain that every edit
# rebuild ran exactly `COPY . .` and the build step (both tools) and that nothing ran without a change.
# Prints a Markdown table of medians and BuildKit/hoist ratios, then notes (versions, load). Not a test.
#
# Usage: bench/incremental.sh [CASE...]   (CASE: pip pip-bind npm npm-bind; default all)
# Env: HOIST (default target/release/hoist, built if missing), RUNS (default 5),
#      PEER (default /work/shared/peers/docker-buildkit).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
hoist=${HOIST:-${CARGO_TARGET_DIR:-$repo/target}/release/hoist}
peer=${PEER:-/work/shared/peers/docker-buildkit}
runs=${RUNS:-5}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(pip pip-bind npm npm-bind)

if [ ! -x "$hoist" ]; then
  (cd "$repo" && cargo build --release --bin hoist)
fi
"$peer" version >/dev/null 2>&1 || bash "$(dirname "$peer")/buildkit-up.sh"

work=$(mktemp -d /var/tmp/hoist-incr.XXXXXX)
trap 'rm -rf "$work"' EXIT
notes=$work/notes
: > "$notes"
note() { echo "$*" >> "$notes"; }

base=$work/hoist-base
HOIST=$hoist bash "$repo/fixtures/make-busybox.sh" "$base" >/dev/null
store=$work/hoist-store
# BuildKit builds FROM the same busybox: loaded unless the peer already has this very image.
ours=$("$hoist" --root "$base" inspect busybox:latest | sed -n 's/^ *"Id": *"\(sha256:[0-9a-f]*\)".*/\1/p' | head -1)
theirs=$("$peer" image inspect -f '{{.Id}}' busybox:latest 2>/dev/null || true)
if [ -z "$ours" ] || [ "$ours" != "$theirs" ]; then
  "$hoist" --root "$base" save -o "$work/busybox.tar" busybox:latest
  "$peer" load -i "$work/busybox.tar" >/dev/null
fi
note "hoist: $("$hoist" --version 2>/dev/null || echo "?") ($hoist, git $(git -C "$repo" rev-parse --short HEAD))"
note "BuildKit: $("$peer" version -f 'docker {{.Client.Version}} / engine {{.Server.Version}}' 2>/dev/null), $("$peer" buildx version 2>/dev/null)"
note "busybox: $ours (hoist) / $("$peer" image inspect -f '{{.Id}}' busybox:latest) (BuildKit)"

now() { date +%s.%N; }
# timed LOG CMD...: runs CMD (output to LOG), prints its wall time in seconds.
timed() {
  local log=$1 s e
  shift
  sync
  s=$(now)
  "$@" >"$log" 2>&1 || { echo "FAILED: $*" >&2; tail -20 "$log" >&2; return 1; }
  e=$(now)
  echo "$e - $s" | bc
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# ran LOG: the Dockerfile steps (not FROM) a plain-progress log shows as run rather than CACHED.
ran() {
  awk '$2 ~ /^\[/ && $0 ~ /[0-9]+\/[0-9]+\] / && $0 !~ /\] FROM / {
         id=$1; sub(/^#[0-9]+ \[[^]]*\] /, ""); name[id]=substr($0, 1, 40); order[++n]=id }
       $2 == "CACHED" {c[$1]=1}
       END { for (i=1; i<=n; i++) { id=order[i]; if (!(id in c) && !(id in seen)) { seen[id]=1; printf "%s; ", name[id] } } }' "$1"
}

app_of() { echo "${1%-bind}"; }
dockerfile_of() { case $1 in *-bind) echo Dockerfile.bind ;; *) echo Dockerfile ;; esac; }
source_of() { case $(app_of "$1") in pip) echo app/util.py ;; npm) echo src/lib.js ;; esac; }
build_cmd() { # TOOL CASE CTX -> sets b
  local df
  df=$3/$(dockerfile_of "$2")
  case $1 in
    hoist) b=("$hoist" --root "$store" build --progress plain -t "bench-incr-$2" -f "$df" "$3") ;;
    buildkit) b=("$peer" build --network host --progress plain -t "bench-incr-$2" -f "$df" "$3") ;;
  esac
}

note "uptime at start: $(uptime)"
declare -A T
nonce=$(date +%s%N)
for c in "${cases[@]}"; do
  for tool in hoist buildkit; do
    ctx=$work/ctx-$c-$tool
    rm -rf "$ctx"
    cp -a "$repo/testdata/incremental/$(app_of "$c")" "$ctx"
    for s in "$ctx"/tools/*.sh; do echo "# bench run $nonce" >> "$s"; done
    [ "$tool" = hoist ] && { rm -rf "$store"; cp -a "$base" "$store"; }
    build_cmd "$tool" "$c" "$ctx"
    T[$c,$tool,cold]=$(timed "$work/log" "${b[@]}")
    for r in $(seq 1 "$runs"); do
      echo "// edit $r" >> "$ctx/$(source_of "$c")"
      T[$c,$tool,edit]+=" $(timed "$work/log" "${b[@]}")"
      steps=$(ran "$work/log")
      case $steps in
        "COPY . .; RUN "*"; ") ;;
        *) note "UNEXPECTED: $tool $c edit rebuild $r ran: $steps" ;;
      esac
      [ "$r" = 1 ] && note "$tool $c: an edit rebuild ran: $steps"
      T[$c,$tool,same]+=" $(timed "$work/log" "${b[@]}")"
      steps=$(ran "$work/log")
      [ -z "$steps" ] || note "UNEXPECTED: $tool $c unchanged rebuild $r ran: $steps"
    done
    [ "$tool" = buildkit ] && "$peer" rmi "bench-incr-$c" >/dev/null 2>&1 || true
    rm -rf "$ctx"
  done
  note "uptime after $c: $(uptime)"
done
[ -n "${KEEP_STORE:-}" ] || rm -rf "$store"

ratio() { printf '%.1f' "$(echo "scale=3; $2 / $1" | bc)"; }
echo "| case | cold hoist | cold BuildKit | ratio | one source edit hoist | BuildKit | ratio | no change hoist | BuildKit | ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in "${cases[@]}"; do
  hc=${T[$c,hoist,cold]} bc_=${T[$c,buildkit,cold]}
  # shellcheck disable=SC2086
  he=$(median ${T[$c,hoist,edit]}) be=$(median ${T[$c,buildkit,edit]})
  # shellcheck disable=SC2086
  hs=$(median ${T[$c,hoist,same]}) bs=$(median ${T[$c,buildkit,same]})
  printf '| %s | %.3f s | %.3f s | %sx | %.3f s | %.3f s | %sx | %.3f s | %.3f s | %sx |\n' \
    "$c" "$hc" "$bc_" "$(ratio "$hc" "$bc_")" "$he" "$be" "$(ratio "$he" "$be")" \
    "$hs" "$bs" "$(ratio "$hs" "$bs")"
done
echo
sed 's/^/- /' "$notes"
