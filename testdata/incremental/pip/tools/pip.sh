#!/bin/sh
# A stand-in for pip (no network): `install -r FILE` simulates a second of work, then writes each
# requirement as a package of generated modules (and touches pip's cache directory);
# `compile DIR` bundles DIR's modules into /usr/local/lib/app.bundle.
set -e
cmd=$1
shift
case $cmd in
install)
  [ "$1" = -r ] || { echo "usage: pip install -r FILE" >&2; exit 2; }
  sleep 1
  site=/usr/local/lib/python3/site-packages
  while IFS= read -r req || [ -n "$req" ]; do
    name=${req%%[=<>]*}
    case $name in ''|'#'*) continue ;; esac
    mkdir -p "$site/$name"
    i=0
    while [ $i -lt 20 ]; do echo "# $req module $i" > "$site/$name/m$i.py"; i=$((i + 1)); done
    echo "installed $req"
  done < "$2"
  mkdir -p /root/.cache/pip && date > /root/.cache/pip/last-install
  ;;
compile)
  find "$1" -name '*.py' | sort | while read -r f; do echo "== $f"; cat "$f"; done > /usr/local/lib/app.bundle
  echo "compiled $(grep -c '^== ' /usr/local/lib/app.bundle) modules"
  ;;
*) echo "pip: unknown command $cmd" >&2; exit 2 ;;
esac
