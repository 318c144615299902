#!/usr/bin/env bash
# Install the font packages FONTS is rendered from (scripts/font-packages.txt) on a Debian or
# Ubuntu machine, e.g. a Colab runtime; run as root.  Unlike scripts/setup.sh it skips the names
# this machine's archive does not have (Ubuntu lacks some Debian font packages), so one missing
# package does not stop the others.  Extra arguments go to apt-get (e.g. --simulate).
set -euo pipefail
cd "$(dirname "$0")/.."
wanted=$(grep -v -E '^\s*(#|$)' scripts/font-packages.txt | tr '\n' ' ')
apt-get update -qq
# shellcheck disable=SC2086
available=$( (apt-cache show --no-all-versions $wanted fontconfig 2>/dev/null || true) | awk '/^Package: /{print $2}' | sort -u)
echo "install-font-packages: $(echo $available | wc -w) of $(echo $wanted fontconfig | wc -w) packages are in this machine's archive"
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" $available >/dev/null
echo "install-font-packages: done"
