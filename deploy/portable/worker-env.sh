#!/usr/bin/env bash
# The Python environment of Beam SDK workers, built once and cached:
#   deploy/portable/worker-env.sh     -> prints the path of the environment's python
# newsradar is installed from its sdist (what `--setup_file` ships), never editable, with the
# same third-party versions as the launching interpreter ($PYTHON, default python3.11: its
# `pip freeze` is the constraint file), so the workers and the launcher agree on Beam.
# Cache: ${NEWSRADAR_CACHE:-${NEWSRADAR_HOME:-~/.newsradar}/cache}/worker-env-<hash>/ where
# <hash> covers setup.py, every packaged file and the constraints: any change builds anew.
# Needs pip's package index (the first run only, a few minutes).
set -euo pipefail
python=${PYTHON:-python3.11}
repo=$(cd "$(dirname "$0")/../.." && pwd)
home=${NEWSRADAR_HOME:-$HOME/.newsradar}
cache=${NEWSRADAR_CACHE:-$home/cache}
packages=(newsradar connectors transforms pipelines)

work=$(mktemp -d "${TMPDIR:-/tmp}/newsradar-worker-env.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$python" -m pip freeze --exclude-editable | grep -v -i '^newsradar[= @]' >"$work/constraints.txt"

key=$(cd "$repo" && {
  cat setup.py "$work/constraints.txt"
  find "${packages[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-16)
dest="$cache/worker-env-$key"
if [ -x "$dest/bin/python" ] && [ -f "$dest/.complete" ]; then
  touch "$dest/.complete"  # last used: see the pruning below
  echo "$dest/bin/python"
  exit 0
fi

echo "building the SDK worker environment $dest (first run only) ..." >&2
# The sdist is built from a copy, so the checkout gets no egg-info or dist/ directory.
mkdir -p "$work/src"
cp -r "$repo/setup.py" "${packages[@]/#/$repo/}" "$work/src/"
[ -f "$repo/README.md" ] && cp "$repo/README.md" "$work/src/"
(cd "$work/src" && "$python" setup.py -q sdist --dist-dir "$work/dist" >&2)
# Each environment takes ~1 GB: drop those no run has used for three days.
find "$cache" -maxdepth 2 -path "$cache/worker-env-*/.complete" -mtime +3 -printf '%h\0' 2>/dev/null |
  xargs -0 -r rm -rf
# A half-built environment (an interrupted first run) has no .complete stamp: start over.
rm -rf "$dest"
mkdir -p "$cache"
"$python" -m venv "$dest"
"$dest/bin/python" -m pip install --quiet --upgrade pip >&2
"$dest/bin/python" -m pip install --quiet -c "$work/constraints.txt" "$work"/dist/newsradar-*.tar.gz >&2
touch "$dest/.complete"
echo "$dest/bin/python"
