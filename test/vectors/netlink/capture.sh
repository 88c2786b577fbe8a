#!/bin/sh
# Regenerate the rtnetlink vectors in this directory from the running kernel.
# Needs root, iproute2 (ip, bridge), strace and python3.  Works only inside
# network namespaces it creates (tvcap-a, tvcap-b) and deletes them afterwards.
set -eu
cd "$(dirname "$0")"
for t in ip bridge strace python3; do
  command -v "$t" >/dev/null 2>&1 || { echo "missing $t (apt-get install -y iproute2 strace python3)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
exec python3 ./capture.py
