#!/usr/bin/env bash
# Make sure Debian's chromium is present for the dashboard browser tests.
# Playwright drives it through executable_path=/usr/bin/chromium; the tests
# never run `playwright install` (that downloads a browser build, which this
# project does not rely on).
set -euo pipefail
CHROMIUM="${BANANAS_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: installing Debian's chromium package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  exit 0
fi
echo "chromium is not installed at $CHROMIUM. Install it (Debian/Ubuntu: sudo apt-get install" >&2
echo "chromium) or set BANANAS_CHROMIUM to a Chromium binary; the dashboard browser tests" >&2
echo "are skipped without it." >&2
exit 1
