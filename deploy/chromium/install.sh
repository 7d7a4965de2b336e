#!/usr/bin/env bash
# Install Chromium from Debian's packages when missing: the headless browser the tests render
# the backtest's HTML report in (tests/pipelines/test_backtest_browser.py). Idempotent; root or
# passwordless sudo. Not needed to run newsradar.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../debian/apt-install.sh" chromium chromium -- /usr/bin/chromium
echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
