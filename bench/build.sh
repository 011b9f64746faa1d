#!/usr/bin/env bash
# Benchmark: `hoist build` vs `buildah bud --layers` on the same Dockerfiles and contexts.
# Cases: 5,000 small files, one 200 MB file, a multi-stage build, a chain of ten RUN steps.
# For each: cold build (empty cache), fully cached rebuild, rebuild after one input file changed.
# Prints a Markdown table (paste it into BENCHMARKS.md, "Build" section). Not a test.
#
# Usage: bench/build.sh [CASE...]   (CASE: small-files big-file multi-stage ten-runs; default all)
# Env: HOIST (default target/release/hoist, built if missing), RUNS (repeats, best kept; default 3),
#      NO_BUILDAH=1 to skip buildah.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
hoist=${HOIST:-$repo/target/release/hoist}
runs=${RUNS:-3}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(small-files big-file multi-stage ten-runs)

if [ ! -x "$hoist" ]; then
  (cd "$repo" && cargo build --release --bin hoist)
fi
if [ -z "${NO_BUILDAH:-}" ] && ! command -v buildah >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends buildah skopeo >/dev/null
fi

work=$(mktemp -d /var/tmp/hoist-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
store=$work/hoist-store
HOIST=$hoist bash "$repo/fixtures/make-busybox.sh" "$store" >/dev/null
bstore=$work/buildah
bah=(buildah --root "$bstore/root" --runroot "$bstore/run" --storage-driver overlay)
if [ -z "${NO_BUILDAH:-}" ]; then
  skopeo copy -q "oci:$store:docker.io/library/busybox:latest" \
    "containers-storage:[overlay@$bstore/root+$bstore/run]docker.io/library/busybox:latest" >/dev/null
fi

now() { date +%s.%N; }
# best_of CMD...: the fastest of $runs runs, in seconds.
elapsed() { local s e; s=$(now); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; return 1; }; e=$(now); echo "$e - $s" | bc; }

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

echo "| case | tool | cold | fully cached | one file changed |"
echo "| --- | --- | ---: | ---: | ---: |"
for c in "${cases[@]}"; do
  for tool in hoist buildah; do
    [ "$tool" = buildah ] && [ -n "${NO_BUILDAH:-}" ] && continue
    cold=""; cached=""; changed=""
    for r in $(seq 1 "$runs"); do
      ctx=$work/ctx-$c-$tool-$r
      rm -rf "$ctx"; make_case "$ctx" "$c"
      if [ "$tool" = hoist ]; then
        b=("$hoist" --root "$store" build --progress quiet -t "bench-$c" "$ctx")
        rm -rf "$store/cache"
      else
        b=("${bah[@]}" bud --layers --isolation chroot --pull=never -q -t "bench-$c" "$ctx")
        "${bah[@]}" rmi -a -f >/dev/null 2>&1 || true
        skopeo copy -q "oci:$store:docker.io/library/busybox:latest" \
          "containers-storage:[overlay@$bstore/root+$bstore/run]docker.io/library/busybox:latest" >/dev/null
      fi
      t1=$(elapsed "${b[@]}"); t2=$(elapsed "${b[@]}")
      change_one "$ctx" "$c"; t3=$(elapsed "${b[@]}")
      best() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
      cold=$(best "$cold" "$t1"); cached=$(best "$cached" "$t2"); changed=$(best "$changed" "$t3")
      rm -rf "$ctx"
    done
    printf '| %s | %s | %.3f s | %.3f s | %.3f s |\n' "$c" "$tool" "$cold" "$cached" "$changed"
  done
done
