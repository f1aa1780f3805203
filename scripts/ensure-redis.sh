#!/usr/bin/env bash
# Make sure a redis-server binary is present for the test suite (tests start
# their own server on a free loopback port; nothing is left running).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found: installing Debian's redis-server package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  # The package may start a system service; the tests do not use it.
  (service redis-server stop || true) >/dev/null 2>&1
  exit 0
fi
echo "redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install redis-server;" >&2
echo "macOS: brew install redis) and run the command again." >&2
exit 1
