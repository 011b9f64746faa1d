#!/usr/bin/env bash
# Benchmark: `hoist build` vs `buildah bud --layers` vs BuildKit (docker build, DOCKER_BUILDKIT=1)
# on the same Dockerfiles and contexts, in one run, each case measured for the three tools back to back.
# Cases: 5,000 small files, one 200 MB file, a multi-stage build, a chain of ten RUN steps.
# For each: cold build (empty build cache, base image local), fully cached rebuild (same context),
# rebuild after one input file changed. Prints a Markdown table (median of RUNS repetitions) and notes
# (versions, BuildKit path, cache-hit checks, uptime). Not a test.
#
# Usage: bench/build.sh [CASE...]   (CASE: small-files big-file multi-stage ten-runs; default all)
# Env: HOIST (default $CARGO_TARGET_DIR/release/hoist or target/release/hoist, built with
#      `cargo build --release` if missing), RUNS (repetitions, median kept; default 3),
#      NO_BUILDAH=1 / NO_DOCKER=1 to skip a peer.
#
# BuildKit: Debian's docker.io (dockerd 20.10, BuildKit bundled), installed here with apt. A private
# dockerd runs with --iptables=false --bridge=none (own data-root, exec-root, pidfile and socket under
# the work dir, log in $work/dockerd.log), so RUN steps use --network host. Stopped at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
hoist=${HOIST:-${CARGO_TARGET_DIR:-$repo/target}/release/hoist}
runs=${RUNS:-3}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(small-files big-file multi-stage ten-runs)

if [ ! -x "$hoist" ]; then
  (cd "$repo" && cargo build --release --bin hoist)
fi
export DEBIAN_FRONTEND=noninteractive
need=()
[ -n "${NO_BUILDAH:-}" ] || { command -v buildah >/dev/null || need+=(buildah); command -v skopeo >/dev/null || need+=(skopeo); }
[ -n "${NO_DOCKER:-}" ] || { [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io); }
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/hoist-bench.XXXXXX)
notes=$work/notes
dpid=""
cleanup() {
  if [ -n "$dpid" ]; then
    kill "$dpid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.5; done
  fi
  # Unmount whatever dockerd/buildah left mounted under the work dir, deepest first.
  awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
: > "$notes"
note() { echo "$*" >> "$notes"; }

# Same base for every tool: busybox from fixtures/make-busybox.sh in a pristine hoist store.
base=$work/hoist-base
HOIST=$hoist bash "$repo/fixtures/make-busybox.sh" "$base" >/dev/null
store=$work/hoist-store
note "hoist: $("$hoist" --version 2>/dev/null || echo "?") ($hoist, git $(git -C "$repo" rev-parse --short HEAD))"

bstore=$work/buildah
bah=(buildah --root "$bstore/root" --runroot "$bstore/run" --storage-driver overlay)
buildah_base() {
  skopeo copy -q "oci:$base:docker.io/library/busybox:latest" \
    "containers-storage:[overlay@$bstore/root+$bstore/run]docker.io/library/busybox:latest" >/dev/null
}
if [ -z "${NO_BUILDAH:-}" ]; then
  buildah_base
  note "buildah: $(buildah --version)"
fi

sock=$work/docker.sock
dk=(/usr/bin/docker -H "unix://$sock")
if [ -z "${NO_DOCKER:-}" ]; then
  /usr/sbin/dockerd --iptables=false --bridge=none --data-root "$work/docker-data" \
    --exec-root "$work/docker-exec" --pidfile "$work/docker.pid" -H "unix://$sock" \
    > "$work/dockerd.log" 2>&1 &
  dpid=$!
  for _ in $(seq 1 60); do "${dk[@]}" version >/dev/null 2>&1 && break; kill -0 "$dpid" 2>/dev/null || break; sleep 1; done
  if ! "${dk[@]}" version >/dev/null 2>&1; then
    echo "dockerd did not start; its log:" >&2; tail -20 "$work/dockerd.log" >&2
    note "BuildKit: dockerd failed to start: $(grep -iE 'level=(fatal|error)' "$work/dockerd.log" | tail -1)"
    NO_DOCKER=1; dpid=""
  else
    note "BuildKit: $(/usr/bin/docker --version) / dockerd $("${dk[@]}" version -f '{{.Server.Version}}'), storage $("${dk[@]}" info -f '{{.Driver}}'), containerd $("${dk[@]}" info -f '{{.ContainerdCommit.ID}}'), runc $("${dk[@]}" info -f '{{.RuncCommit.ID}}')"
    if "${dk[@]}" buildx version >/dev/null 2>&1; then
      note "BuildKit path: docker buildx available ($("${dk[@]}" buildx version)), but builds use DOCKER_BUILDKIT=1 docker build (dockerd's bundled BuildKit)"
    else
      note "BuildKit path: docker buildx not available (Debian's docker.io has no buildx plugin): DOCKER_BUILDKIT=1 docker build, dockerd's bundled BuildKit"
    fi
    "$hoist" --root "$base" save -o "$work/busybox.tar" busybox:latest
    loaded=$("${dk[@]}" load -i "$work/busybox.tar")
    if ! "${dk[@]}" image inspect busybox:latest >/dev/null 2>&1; then
      "${dk[@]}" tag "$(echo "$loaded" | awk '/Loaded image/ {print $NF; exit}')" busybox:latest
    fi
  fi
fi
tools=(hoist)
[ -n "${NO_BUILDAH:-}" ] || tools+=(buildah)
[ -n "${NO_DOCKER:-}" ] || tools+=(buildkit)

now() { date +%s.%N; }
# timed LOG CMD...: runs CMD (output to LOG), prints its wall time in seconds.
timed() {
  local log=$1 s e; shift
  sync # no tool pays for another's (or the context's) dirty-page writeback
  s=$(now); "$@" >"$log" 2>&1 || { echo "FAILED: $*" >&2; tail -20 "$log" >&2; return 1; }; e=$(now)
  echo "$e - $s" | bc
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

make_case() { # dir case
  local d=$1
  mkdir -p "$d"
  case $2 in
    small-files)
      mkdir -p "$d/src"
      for i in $(seq 1 50); do
        mkdir -p "$d/src/d$i"
        for j in $(seq 1 100); do echo "file $i $j" > "$d/src/d$i/f$j.txt"; done
      done
      printf 'FROM busybox:latest\nCOPY src /src\nRUN find /src -type f | wc -l > /count\n' > "$d/Dockerfile"
      ;;
    big-file)
      head -c 200M /dev/urandom > "$d/big.bin"
      echo small > "$d/small.txt"
      printf 'FROM busybox:latest\nCOPY small.txt /small.txt\nCOPY big.bin /big.bin\nRUN wc -c /big.bin > /size\n' > "$d/Dockerfile"
      ;;
    multi-stage)
      echo v1 > "$d/input.txt"
      cat > "$d/Dockerfile" <<'DF'
FROM busybox:latest AS a
RUN for i in $(seq 1 2000); do echo $i; done > /a.txt
FROM busybox:latest AS b
COPY input.txt /input.txt
RUN cat /input.txt /input.txt > /b.txt
FROM busybox:latest AS c
RUN sleep 1 && echo c > /c.txt
FROM busybox:latest
COPY --from=a /a.txt /out/
COPY --from=b /b.txt /out/
COPY --from=c /c.txt /out/
DF
      ;;
    ten-runs)
      echo v1 > "$d/input.txt"
      { echo 'FROM busybox:latest'; echo 'COPY input.txt /input.txt'
        for i in $(seq 1 10); do echo "RUN echo step $i >> /steps.txt"; done; } > "$d/Dockerfile"
      ;;
  esac
}

change_one() { # dir case
  case $2 in
    small-files) echo changed >> "$1/src/d25/f50.txt" ;;
    big-file) echo changed >> "$1/small.txt" ;;
    *) echo changed >> "$1/input.txt" ;;
  esac
}

# reset TOOL CASE: empty build cache, only the busybox base left.
reset() {
  case $1 in
    hoist) rm -rf "$store"; cp -a "$base" "$store" ;;
    buildah) "${bah[@]}" rmi -a -f >/dev/null 2>&1 || true; buildah_base ;;
    buildkit) "${dk[@]}" rmi -f "bench-$2" >/dev/null 2>&1 || true; "${dk[@]}" builder prune -a -f >/dev/null ;;
  esac
}
build_cmd() { # TOOL CASE CTX -> sets b
  case $1 in
    hoist) b=("$hoist" --root "$store" build --progress quiet -t "bench-$2" "$3") ;;
    buildah) b=("${bah[@]}" bud --layers --isolation chroot --pull=never -q -t "bench-$2" "$3") ;;
    buildkit) b=(env DOCKER_BUILDKIT=1 "${dk[@]}" build --network host --progress plain -t "bench-$2" "$3") ;;
  esac
}

note "uptime at start: $(uptime)"
declare -A T
for c in "${cases[@]}"; do
  for r in $(seq 1 "$runs"); do
    for tool in "${tools[@]}"; do
      ctx=$work/ctx-$c-$tool
      rm -rf "$ctx"; make_case "$ctx" "$c"
      reset "$tool" "$c"
      build_cmd "$tool" "$c" "$ctx"
      T[$c,$tool,cold]+=" $(timed "$work/log-cold" "${b[@]}")"
      T[$c,$tool,cached]+=" $(timed "$work/log-cached" "${b[@]}")"
      if [ "$tool" = buildkit ]; then
        # Fully cached must mean every step CACHED (no step executed).
        read -r hits steps < <(awk '$2 ~ /^\[/ && / (RUN|COPY|ADD) / && /[0-9]+\/[0-9]+\]/ {s[$1]=1}
          $2 == "CACHED" {c[$1]=1} END {n=0; h=0; for (k in s) {n++; if (k in c) h++}; print h, n}' "$work/log-cached")
        note "BuildKit cache check $c run $r: $hits CACHED of $steps COPY/RUN steps in the cached rebuild"
      fi
      change_one "$ctx" "$c"
      T[$c,$tool,changed]+=" $(timed "$work/log-changed" "${b[@]}")"
      rm -rf "$ctx"
    done
  done
  note "uptime after $c: $(uptime)"
done

echo "| case | tool | cold | fully cached | one file changed |"
echo "| --- | --- | ---: | ---: | ---: |"
for c in "${cases[@]}"; do
  for tool in "${tools[@]}"; do
    # shellcheck disable=SC2086
    printf '| %s | %s | %.3f s | %.3f s | %.3f s |\n' "$c" "$tool" \
      "$(median ${T[$c,$tool,cold]})" "$(median ${T[$c,$tool,cached]})" "$(median ${T[$c,$tool,changed]})"
  done
done
echo
echo "Runs per cell: $runs (median). All samples (s):"
for c in "${cases[@]}"; do
  for tool in "${tools[@]}"; do
    echo "- $c $tool: cold${T[$c,$tool,cold]}; cached${T[$c,$tool,cached]}; changed${T[$c,$tool,changed]}"
  done
done
echo
cat "$notes"
