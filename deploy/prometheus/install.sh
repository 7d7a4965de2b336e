#!/usr/bin/env bash
# Install Prometheus, promtool, Alertmanager and amtool from Debian's packages when missing
# (Prometheus 2.x). Idempotent; root or passwordless sudo. The packages also ship systemd
# units and init scripts; we only need the binaries (tests start their own Prometheus with a
# temporary config), so the packaged services are kept from starting during the install.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../debian/apt-install.sh" prometheus prometheus prometheus-alertmanager -- \
    /usr/bin/prometheus /usr/bin/promtool /usr/bin/prometheus-alertmanager /usr/bin/amtool
echo "prometheus: installed ($(/usr/bin/prometheus --version 2>&1 | head -n1))"
