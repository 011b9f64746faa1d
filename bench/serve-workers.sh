#!/usr/bin/env bash
# Benchmark (not a test): `hoist serve` workers sharing a PostgreSQL queue on this machine.
#  1. throughput: BUILDS small builds (FROM scratch + COPY, pushed to a local registry) across REPOS
#     repositories, queued through one `--role web` process, then run by 1, 2 and 3 `--role worker`
#     processes (each its own state and store, like separate machines): builds/minute from the first
#     start to the last finish.
#  2. queue overhead: QUEUED builds inserted at once, then one worker: median and p95 gap between a
#     build's finish and that worker's next start (claim, heartbeat bookkeeping, prune, log setup);
#     each build is of a ref that no longer exists, so it ends after a mirror fetch, with no build.
# Prints markdown for BENCHMARKS.md.
#
# Usage: bench/serve-workers.sh   (HOIST=path/to/hoist, default target/debug/hoist, built if missing;
#        BUILDS=30 REPOS=5 QUEUED=1000; needs postgresql, docker-registry, curl, openssl, git)
set -euo pipefail
cd "$(dirname "$0")/.."
hoist=$(realpath "${HOIST:-target/debug/hoist}")
[ -x "$hoist" ] || { cargo build -p hoist --quiet; hoist=$(realpath target/debug/hoist); }
builds=${BUILDS:-30} repos=${REPOS:-5} queued=${QUEUED:-1000}
secret=bench-secret
psql=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/psql

work=$(mktemp -d /var/tmp/hoist-bench-serve.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  fixtures/pg-cluster.sh stop "$work/pg" || true
  fixtures/registry.sh stop "$work/reg" || true
  rm -rf "$work"
}
trap cleanup EXIT
reg=127.0.0.1:$(fixtures/registry.sh start "$work/reg")
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Repositories r0..: one branch per build, each a different file.
per=$(( (builds + repos - 1) / repos ))
for r in $(seq 0 $((repos - 1))); do
  git init -q --bare -b main "$work/r$r.git"
  w=$work/r$r-work
  git init -q -b main "$w"
  printf 'FROM scratch\nCOPY f.txt /\n' >"$w/Dockerfile"
  echo "r$r" >"$w/f.txt"
  git -C "$w" add . && git -C "$w" -c user.name=b -c user.email=b@b commit -qm first
  for b in $(seq 0 $((per - 1))); do
    git -C "$w" checkout -q -B "b$b" main
    echo "r$r b$b" >"$w/f.txt"
    git -C "$w" -c user.name=b -c user.email=b@b commit -qam "b$b"
  done
  git -C "$w" push -q --all "$work/r$r.git"
done

# config NAME URL: a hoist.toml in $work/NAME
config() {
  mkdir -p "$work/$1"
  {
    printf 'listen = "127.0.0.1:%s"\nstate_dir = "state"\nstore = "store"\nregistry = "%s/bench"\n' "$(port)" "$reg"
    printf 'secret = "%s"\nqueue = "%s"\nworker_name = "%s"\nkeep_builds = 100000\nsticky_seconds = 0\n' "$secret" "$2" "$1"
    for r in $(seq 0 $((repos - 1))); do
      printf '[[repository]]\nname = "r%s"\nurl = "file://%s/r%s.git"\n' "$r" "$work" "$r"
      printf '[[repository.rule]]\nsource_type = "branch"\nsource = "/.*/"\ntag = "{sourceref}"\n'
    done
  } >"$work/$1/hoist.toml"
}
# serve NAME ROLE: starts it; sets $addr
serve() {
  setsid "$hoist" serve --config "$work/$1/hoist.toml" --role "$2" </dev/null >/dev/null 2>"$work/$1.log" &
  pids+=($!)
  disown $!
  for _ in $(seq 200); do
    addr=$(grep -o 'listening on http://[0-9.:]*' "$work/$1.log" 2>/dev/null | sed 's|.*http://||' || true)
    [ -n "$addr" ] && return
    sleep 0.05
  done
  cat "$work/$1.log" >&2; exit 1
}
# push ADDR REPO REF SHA: a signed GitHub push webhook
push() {
  local body sig
  body=$(printf '{"ref":"%s","before":"%s","after":"%s","repository":{"full_name":"%s"}}' "$3" "$(printf '0%.0s' $(seq 40))" "$4" "$2")
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
  curl -sf -o /dev/null -X POST "http://$1/hooks/$2" -H 'X-GitHub-Event: push' \
    -H "X-GitHub-Delivery: $RANDOM$RANDOM$RANDOM" -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$body"
}
q() { "$psql" -qtA "$url" -c "$1"; }

echo "| workers | builds | wall s | builds/minute |"
echo "|---|---|---|---|"
for n in 1 2 3; do
  fixtures/pg-cluster.sh stop "$work/pg" >/dev/null 2>&1 || true
  url=$(fixtures/pg-cluster.sh start "$work/pg" "$(port)")
  config web "$url"; serve web web; web=$addr
  count=0
  for b in $(seq 0 $((per - 1))); do
    for r in $(seq 0 $((repos - 1))); do
      [ $count -lt "$builds" ] || break
      push "$web" "r$r" "refs/heads/b$b" "$(git -C "$work/r$r-work" rev-parse "b$b")"
      count=$((count + 1))
    done
  done
  for w in $(seq 1 "$n"); do rm -rf "$work/w$w"; config "w$w" "$url"; serve "w$w" worker; done
  until [ "$(q "SELECT count(*) FROM builds WHERE state IN ('queued', 'running')")" = 0 ]; do sleep 0.2; done
  read -r wall ok < <(q "SELECT (max(finished_at) - min(started_at)) / 1000.0, count(*) FILTER (WHERE state = 'succeeded') FROM builds" | tr '|' ' ')
  [ "$ok" = "$count" ] || { echo "only $ok of $count builds succeeded" >&2; q "SELECT id, state, error FROM builds WHERE state <> 'succeeded'" >&2; exit 1; }
  printf '| %s | %s | %.1f | %.1f |\n' "$n" "$count" "$wall" "$(echo "$count * 60 / $wall" | bc -l)"
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  pids=()
done

# Queue overhead: QUEUED builds of refs that do not exist, inserted at once, one worker.
fixtures/pg-cluster.sh stop "$work/pg" >/dev/null 2>&1 || true
url=$(fixtures/pg-cluster.sh start "$work/pg" "$(port)")
rm -rf "$work/w1"; config w1 "$url"
serve w1 web # migrates the schema; runs no builds
kill -KILL -- "-${pids[0]}"; pids=()
sha=$(git -C "$work/r0-work" rev-parse main)
q "INSERT INTO builds (repo, git_ref, sha, state, image, dockerfile, context, build_args, tags, queued_at)
   SELECT 'r0', 'refs/heads/gone-' || i, '$sha', 'queued', '$reg/bench/r0', 'Dockerfile', '.', '{}',
          '[\"$reg/bench/r0:gone\"]', (extract(epoch from now()) * 1000)::bigint
   FROM generate_series(1, $queued) i"
serve w1 worker
until [ "$(q "SELECT count(*) FROM builds WHERE state IN ('queued', 'running')")" = 0 ]; do sleep 0.5; done
echo
echo "| queued builds | median gap ms (finish -> next start) | p95 gap ms | builds/s |"
echo "|---|---|---|---|"
q "WITH g AS (SELECT started_at - lag(finished_at) OVER (ORDER BY started_at) AS gap FROM builds)
   SELECT $queued, percentile_cont(0.5) WITHIN GROUP (ORDER BY gap), percentile_cont(0.95) WITHIN GROUP (ORDER BY gap),
          round($queued * 1000.0 / ((SELECT max(finished_at) - min(started_at) FROM builds)), 1)
   FROM g WHERE gap IS NOT NULL" | awk -F'|' '{ printf "| %s | %.1f | %.1f | %s |\n", $1, $2, $3, $4 }'
