#!/usr/bin/env bash
# Download the Apache Kafka broker jars (see pom.xml beside this script) from Maven Central into a cache:
#   ${RXSTREAM_KAFKA_CACHE:-$HOME/.cache/rxstream-kafka}/libs
# Idempotent: when the cache already holds the jars for this exact pom.xml (a marker file keyed by the
# pom's sha256), nothing is downloaded. Works from any cwd. Prints the cache dir on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/pom.xml"
cache="${RXSTREAM_KAFKA_CACHE:-$HOME/.cache/rxstream-kafka}"
libs="$cache/libs"

if ! command -v sha256sum >/dev/null 2>&1; then
    echo "install.sh: 'sha256sum' not found on PATH" >&2
    exit 2
fi
pom_sha="$(sha256sum "$pom" | cut -d' ' -f1)"
marker="$cache/complete-$pom_sha"

if [[ -f "$marker" ]] && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
    echo "$cache"
    exit 0
fi

if ! command -v mvn >/dev/null 2>&1; then
    echo "install.sh: 'mvn' (Apache Maven) not found on PATH; needed to download the Kafka jars" >&2
    exit 2
fi
mkdir -p "$cache"
# Serialise concurrent installs (parallel test sessions); then look again, another run may have finished.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache/.install.lock"
    flock -w 900 9
    if [[ -f "$marker" ]] && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null; then
        echo "$cache"
        exit 0
    fi
fi
# Download into a fresh folder and swap it in only when complete, so an interrupted run never leaves a
# half-filled libs/ that a later run would take as complete.
tmp="$(mktemp -d "$cache/libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "install.sh: downloading Kafka jars into $libs ..." >&2
mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$tmp" >&2
if ! compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null; then
    echo "install.sh: maven finished but no kafka_2.13 jar in $tmp" >&2
    exit 1
fi
rm -rf "$libs" "$cache"/complete-*
mv "$tmp" "$libs"
trap - EXIT
touch "$marker"
echo "$cache"
