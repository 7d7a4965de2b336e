#!/usr/bin/env bash
# Resolve the local Kafka broker's jars from Maven Central into a cache directory.
#   deploy/kafka/fetch-jars.sh [CACHE_DIR]
# CACHE_DIR defaults to ${NEWSRADAR_CACHE:-$NEWSRADAR_HOME/cache}/kafka-<version> (NEWSRADAR_HOME: ~/.newsradar).
# Idempotent: a cache that is complete (marker file present) is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
home=${NEWSRADAR_HOME:-$HOME/.newsradar}
cache=${NEWSRADAR_CACHE:-$home/cache}
dest=${1:-$cache/kafka-$version}
if [ -f "$dest/.complete" ]; then
  echo "kafka $version jars already in $dest"
  exit 0
fi
command -v mvn >/dev/null || { echo "error: mvn (Apache Maven) is needed to fetch the Kafka jars" >&2; exit 1; }
command -v java >/dev/null || { echo "error: java (17 or newer) is needed to run Kafka" >&2; exit 1; }
echo "fetching Apache Kafka $version jars from Maven Central into $dest ..."
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$tmp"
rm -rf "$dest"
mv "$tmp" "$dest"
touch "$dest/.complete"
echo "kafka $version: $(ls "$dest"/*.jar | wc -l) jars in $dest"
