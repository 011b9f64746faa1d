#!/usr/bin/env bash
# Layer commit throughput and peak memory: hoist's layer writer (tar + sha256 in one pass, and
# tar + sha256 + gzip/zstd in one pass) against `tar | sha256sum` and `tar | gzip` on the same data.
# Data sets: one 200 MB file (half random, half text) and 5,000 small files (1-16 KiB).
# Usage: bench/layer-commit.sh [WORKDIR]   (results as a Markdown table on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
mkdir -p "$work"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q -p hoist-image --example layer_commit
bin=$CARGO_TARGET_DIR/release/examples/layer_commit

big=$work/big small=$work/small
if [ ! -d "$big" ]; then
  mkdir -p "$big"
  # (`yes` dies of SIGPIPE when head is done: not an error.)
  { head -c 100M /dev/urandom; yes 'hoist layer commit benchmark line of text 0123456789' | head -c 100M || true; } >"$big/data"
fi
if [ ! -d "$small" ]; then
  mkdir -p "$small"
  for d in $(seq 0 49); do
    mkdir -p "$small/d$d"
    for f in $(seq 0 99); do
      head -c $(( (RANDOM % 16 + 1) * 1024 )) /dev/urandom | base64 >"$small/d$d/f$f"
    done
  done
fi
sync

measure() { # label command...
  local label=$1; shift
  local best="" rss=""
  for _ in 1 2 3; do
    rm -rf "$work/store"
    local out
    out=$( { /usr/bin/time -f '%e %M' "$@" >/dev/null; } 2>&1 | tail -1)
    local secs=${out% *} kb=${out#* }
    if [ -z "$best" ] || awk "BEGIN{exit !($secs < $best)}"; then best=$secs; rss=$kb; fi
  done
  echo "$label;$best;$((rss / 1024))"
}

echo "| data | tool | seconds (best of 3) | MB/s | peak RSS MiB |"
echo "|---|---|---|---|---|"
for set in big small; do
  dir=${!set}
  bytes=$(du -sb "$dir" | cut -f1)
  label=$([ $set = big ] && echo "1 x 200 MB file" || echo "5,000 small files")
  while IFS=";" read -r tool secs rss; do
    mbs=$(awk "BEGIN{printf \"%.0f\", $bytes/1e6/($secs>0?$secs:0.001)}")
    echo "| $label | $tool | $secs | $mbs | $rss |"
  done < <(
    measure "hoist commit (tar+sha256)" "$bin" "$dir" "$work/store" none
    measure "tar \| sha256sum" sh -c "tar -C '$dir' -cf - . | sha256sum"
    measure "hoist commit + gzip (one pass, $(nproc) cores)" "$bin" "$dir" "$work/store" gzip
    measure "tar \| gzip" sh -c "tar -C '$dir' -cf - . | gzip -6 >/dev/null"
    measure "hoist commit + zstd (one pass)" "$bin" "$dir" "$work/store" zstd
    measure "tar \| zstd -3 -T0" sh -c "tar -C '$dir' -cf - . | zstd -q -3 -T0 >/dev/null"
  )
done
rm -rf "$work/store"
