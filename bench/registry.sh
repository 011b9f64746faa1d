#!/usr/bin/env bash
# Benchmark (not a test): hoist push/pull vs `skopeo copy` against the same local registry, for a
# ~60 MB image (busybox + 58 MB of files, half compressible) and a single 200 MB layer (random).
# Wall time and peak RSS via /usr/bin/time -v. Prints a markdown table for BENCHMARKS.md.
#
# Usage: bench/registry.sh   (builds hoist --release first unless $HOIST names a binary; needs
#        skopeo, docker-registry, GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
command -v /usr/bin/time >/dev/null || apt-get install -y --no-install-recommends time
target=${CARGO_TARGET_DIR:-target}
if [ -z "${HOIST:-}" ]; then cargo build --release --quiet; fi
hoist=${HOIST:-$target/release/hoist}

work=$(mktemp -d /var/tmp/hoist-bench.XXXXXX)
trap 'fixtures/registry.sh stop "$work/reg"; fixtures/registry.sh stop "$work/reg2"; rm -rf "$work"' EXIT
reg=127.0.0.1:$(fixtures/registry.sh start "$work/reg")
reg2=127.0.0.1:$(fixtures/registry.sh start "$work/reg2")
export DOCKER_CONFIG=$work/docker

# measure LABEL CMD...: appends "LABEL|seconds|peak MiB" to $work/results
measure() {
  local label=$1; shift
  /usr/bin/time -v -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
  # m:ss.ss -> seconds
  wall=$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  printf '%s|%.2f|%.0f\n' "$label" "$wall" "$((rss / 1024))" | tee -a "$work/results"
}

# The two images, made with hoist import.
mk() { # NAME DIR
  "$hoist" --root "$work/src" import "$2" "$1" >/dev/null
}
mkdir -p "$work/img60/data"
head -c $((29 << 20)) /dev/urandom >"$work/img60/data/random.bin"
# compressible: repeated text
(set +o pipefail; yes 'hoist registry benchmark line, compressible text 0123456789' | head -c $((29 << 20)) >"$work/img60/data/text.txt")
cp /bin/busybox "$work/img60/busybox"
mk "$reg/bench/img60:1" "$work/img60"
mkdir -p "$work/layer200"
head -c $((200 << 20)) /dev/urandom >"$work/layer200/blob.bin"
mk "$reg/bench/layer200:1" "$work/layer200"
rm -rf "$work/img60" "$work/layer200"

: >"$work/results"
for img in img60 layer200; do
  # hoist push from its own store (layers are kept uncompressed: includes gzip compression).
  measure "hoist push $img (compresses)" "$hoist" --root "$work/src" push -q "$reg/bench/$img:1"
  # hoist pull into a clean store.
  measure "hoist pull $img" "$hoist" --root "$work/pull-$img" pull -q "$reg/bench/$img:1"
  # skopeo pull into an OCI layout.
  measure "skopeo copy (pull) $img" skopeo copy -q --src-tls-verify=false "docker://$reg/bench/$img:1" "oci:$work/sk-$img:1"
  # Re-push: every blob is already there (HEAD skip).
  measure "hoist re-push $img (all blobs exist)" "$hoist" --root "$work/src" push -q "$reg/bench/$img:1"
  # Pushes of the same compressed blobs to a second, empty registry (no mounts possible).
  "$hoist" --root "$work/pull-$img" tag "$reg/bench/$img:1" "$reg2/bench/h-$img:1"
  measure "hoist push $img (compressed blobs)" "$hoist" --root "$work/pull-$img" push -q "$reg2/bench/h-$img:1"
  measure "skopeo copy (push) $img" skopeo copy -q --dest-tls-verify=false "oci:$work/sk-$img:1" "docker://$reg2/bench/s-$img:1"
done

echo
echo "| operation | wall (s) | peak RSS (MiB) |"
echo "|---|---|---|"
awk -F'|' '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$work/results"
