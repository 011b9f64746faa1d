#!/bin/sh
# A stand-in for npm (no network): `ci` simulates a second of work, then writes each package of
# package-lock.json under node_modules (and touches npm's cache directory); `run build` bundles
# src/*.js into dist/bundle.js.
set -e
case $1 in
ci)
  [ -f package.json ] && [ -f package-lock.json ] || { echo "npm ci needs package.json and package-lock.json" >&2; exit 1; }
  sleep 1
  grep -o '"node_modules/[^"]*"' package-lock.json | tr -d '"' | while read -r p; do
    mkdir -p "$p"
    echo "module.exports = '$p';" > "$p/index.js"
  done
  mkdir -p /root/.npm && date > /root/.npm/last-ci
  echo "added $(ls node_modules | wc -l) packages"
  ;;
run)
  [ "$2" = build ] || { echo "npm: no script $2" >&2; exit 1; }
  mkdir -p dist
  cat src/*.js > dist/bundle.js
  echo "built dist/bundle.js ($(wc -l < dist/bundle.js) lines)"
  ;;
*) echo "npm: unknown command $1" >&2; exit 2 ;;
esac
