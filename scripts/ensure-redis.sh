#!/usr/bin/env bash
# Make sure redis-server, redis-cli and redis-sentinel are present for the test
# suite (tests start their own servers, clusters and sentinels on free loopback
# ports; nothing is left running).
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "${missing[*]} not found: installing Debian's package(s)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages may start system services; the tests do not use them.
  (service redis-server stop || true) >/dev/null 2>&1
  (service redis-sentinel stop || true) >/dev/null 2>&1
  exit 0
fi
echo "${missing[*]} not installed. Install (Debian/Ubuntu: sudo apt-get install redis-server" >&2
echo "redis-tools redis-sentinel; macOS: brew install redis) and run the command again." >&2
exit 1
