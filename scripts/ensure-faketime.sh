#!/usr/bin/env bash
# Make sure Debian's libfaketime is present for the clock-skew chaos test
# (tests/chaos/test_clock_skew.py preloads it into a worker and a scheduler
# to shift their clocks; nothing else uses it).
set -euo pipefail
if ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "libfaketime not found: installing Debian's faketime package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends faketime >/dev/null
  exit 0
fi
echo "libfaketime is not installed. Install it (Debian/Ubuntu: sudo apt-get install faketime)" >&2
echo "and run the command again; the clock-skew test needs it." >&2
exit 1
