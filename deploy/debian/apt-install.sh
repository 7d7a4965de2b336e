#!/usr/bin/env bash
# Install Debian packages when the binaries they provide are missing.
#   deploy/debian/apt-install.sh LABEL PACKAGE... -- BINARY...
# Idempotent: does nothing when every BINARY is already executable. Runs as root (CI,
# developer machines) or through passwordless sudo. Packaged services are kept from starting
# during the install (tests start their own servers with temporary configs). A fresh machine
# has no package lists yet: they are refreshed only when the install needs it.
set -euo pipefail

label=$1
shift
packages=()
while [[ $# -gt 0 && $1 != "--" ]]; do
    packages+=("$1")
    shift
done
[[ $# -gt 0 ]] && shift
binaries=("$@")
if [[ ${#packages[@]} -eq 0 || ${#binaries[@]} -eq 0 ]]; then
    echo "usage: $0 LABEL PACKAGE... -- BINARY..." >&2
    exit 2
fi

missing=()
for bin in "${binaries[@]}"; do
    [[ -x "$bin" ]] || missing+=("$bin")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
echo "$label: missing ${missing[*]}; installing ${packages[*]} with apt-get"

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "$label: need root (or passwordless sudo) to apt-get install ${packages[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "$label: no apt-get on this machine; install ${packages[*]} by hand" >&2
    exit 1
fi

# Debian's invoke-rc.d consults policy-rc.d: exit 101 keeps init scripts from starting daemons.
POLICY=/usr/sbin/policy-rc.d
our_policy=""
if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\n# temporary, written by newsradar deploy/debian/apt-install.sh\nexit 101\n' \
        | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    our_policy=$POLICY
fi
cleanup() { if [[ -n $our_policy ]]; then "${SUDO[@]}" rm -f "$our_policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
}
if ! apt_install; then
    "${SUDO[@]}" apt-get update -q
    apt_install
fi

for bin in "${binaries[@]}"; do
    if [[ ! -x "$bin" ]]; then
        echo "$label: $bin still missing after installing ${packages[*]}" >&2
        exit 1
    fi
done
