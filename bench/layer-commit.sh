#!/usr/bin/env bash
# Layer commit throughput and peak memory: hoist's layer writer (tar + sha256 in one pass, and
# tar + sha256 + gzip/zstd in one pass) against `tar | sha256sum` and `tar | gzip` on the same data,
# and compressing an already stored layer as a push does (verified read, compress, hashed blob write).
# Data sets: one 200 MB file (half random, half text), one 200 MiB random file (incompressible, like
# the registry benchmark's layer200) and 5,000 small files (1-16 KiB).
# Usage: bench/layer-commit.sh [WORKDIR]   (results as a Markdown table on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
mkdir -p "$work"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q -p hoist-image --example layer_commit
bin=$CARGO_TARGET_DIR/release/examples/layer_commit

big=$work/big small=$work/small rand=$work/rand
if [ ! -d "$big" ]; then
  mkdir -p "$big"
  # (`yes` dies of SIGPIPE when head is done: not an error.)
  { head -c 100M /dev/urandom; yes 'hoist layer commit benchmark line of text 0123456789' | head -c 100M || true; } >"$big/data"
fi
if [ ! -d "$rand" ]; then
  mkdir -p "$rand"
  head -c 200M /dev/urandom >"$rand/data"
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

# measure_self LABEL COMMAND...: as measure, but the time is the one the command prints last on its
# stdout (the push-* modes time only the compression, not the commit before it).
measure_self() {
  local label=$1; shift
  local best="" rss=""
  for _ in 1 2 3; do
    rm -rf "$work/store"
    local out secs kb
    out=$( { /usr/bin/time -f 'RSS %M' "$@"; } 2>&1)
    secs=$(echo "$out" | awk '$1 ~ /^push-/ {print $NF}')
    kb=$(echo "$out" | awk '$1 == "RSS" {print $2}')
    if [ -z "$best" ] || awk "BEGIN{exit !($secs < $best)}"; then best=$secs; rss=$kb; fi
  done
  echo "$label;$best;$((rss / 1024))"
}

echo "| data | tool | seconds (best of 3) | MB/s | peak RSS MiB |"
echo "|---|---|---|---|---|"
for set in big rand small; do
  dir=${!set}
  bytes=$(du -sb "$dir" | cut -f1)
  case $set in
    big) label="1 x 200 MB file" ;;
    rand) label="1 x 200 MiB random file" ;;
    *) label="5,000 small files" ;;
  esac
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
    measure_self "hoist stored layer -> gzip (as push, $(nproc) cores)" "$bin" "$dir" "$work/store" push-gzip
    measure_self "hoist stored layer -> zstd (as push)" "$bin" "$dir" "$work/store" push-zstd
  )
done
rm -rf "$work/store"
