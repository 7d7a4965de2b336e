#!/usr/bin/env bash
# Install Prometheus, promtool, Alertmanager and amtool from Debian's packages when missing.
#
# Idempotent: does nothing when the four binaries are already on the machine. Runs as root
# (CI, developer machines) or through passwordless sudo. The packages also ship systemd
# units and init scripts; we only need the binaries (tests start their own Prometheus with a
# temporary config), so the packaged services are kept from starting during the install.
set -euo pipefail

PACKAGES=(prometheus prometheus-alertmanager)
BINARIES=(/usr/bin/prometheus /usr/bin/promtool /usr/bin/prometheus-alertmanager /usr/bin/amtool)

missing=()
for bin in "${BINARIES[@]}"; do
    [[ -x "$bin" ]] || missing+=("$bin")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "prometheus: installed ($(/usr/bin/prometheus --version 2>&1 | head -n1))"
    exit 0
fi
echo "prometheus: missing ${missing[*]}; installing ${PACKAGES[*]} with apt-get"

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "prometheus: need root (or passwordless sudo) to apt-get install ${PACKAGES[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "prometheus: no apt-get on this machine; install ${PACKAGES[*]} (Prometheus 2.x) by hand" >&2
    exit 1
fi

# Keep the packages' init scripts from starting daemons on :9090/:9093 during the install
# (Debian's invoke-rc.d consults policy-rc.d); remove our policy again afterwards.
POLICY=/usr/sbin/policy-rc.d
our_policy=""
if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\n# temporary, written by newsradar deploy/prometheus/install.sh\nexit 101\n' \
        | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    our_policy=$POLICY
fi
cleanup() { if [[ -n $our_policy ]]; then "${SUDO[@]}" rm -f "$our_policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
}
# A fresh machine has no package lists yet; refresh them only when the install needs it.
if ! apt_install; then
    "${SUDO[@]}" apt-get update -q
    apt_install
fi

for bin in "${BINARIES[@]}"; do
    if [[ ! -x "$bin" ]]; then
        echo "prometheus: $bin still missing after installing ${PACKAGES[*]}" >&2
        exit 1
    fi
done
echo "prometheus: installed ($(/usr/bin/prometheus --version 2>&1 | head -n1))"
