#!/usr/bin/env bash
# Build Beam's Prism runner once, at the same version as the installed apache-beam, and cache it.
#   deploy/prism/build.sh            -> prints the path of the binary
# Cache: ${NEWSRADAR_CACHE:-${NEWSRADAR_HOME:-~/.newsradar}/cache}/prism-<version>/prism
# Needs Go (the module comes from the Go module proxy); without internet beyond the proxy,
# Beam cannot download a Prism release itself, so we build it.
set -euo pipefail
python=${PYTHON:-python}
version=$("$python" -c 'import apache_beam; print(apache_beam.__version__)' 2>/dev/null)
home=${NEWSRADAR_HOME:-$HOME/.newsradar}
cache=${NEWSRADAR_CACHE:-$home/cache}
dest="$cache/prism-$version"
if [ -x "$dest/prism" ]; then
  echo "$dest/prism"
  exit 0
fi
command -v go >/dev/null || { echo "error: Go is needed to build the Prism runner" >&2; exit 1; }
echo "building Beam Prism runner v$version with go install (first run only) ..." >&2
mkdir -p "$dest"
GOBIN="$dest" GOFLAGS=-mod=mod go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$version" >&2
echo "$dest/prism"
