#!/bin/sh
# A stand-in for your application: it reads the config keyfill rendered, reloads
# on SIGHUP and stops on SIGTERM. Replace it with your own program.
set -eu
[ "${1:-}" = --config ] && [ -s "${2:-}" ] || { echo "app: usage: app --config FILE (non-empty)" >&2; exit 64; }
echo "app: started with $2" >&2
trap 'echo "app: reloading $2" >&2' HUP
trap 'echo "app: stopping" >&2; exit 0' TERM INT
while :; do
  sleep 1 &
  wait $! || true
done
