#!/usr/bin/env bash
# Install the font packages FONTS is rendered from (scripts/font-packages.txt) on a Debian or
# Ubuntu machine, e.g. a Colab runtime.  Unlike scripts/setup.sh it skips the names this machine's
# archive does not have (Ubuntu lacks some Debian font packages), so one missing package does not
# stop the others.  Does nothing when every package is installed already; without root (or
# apt-get) it prints the command to run and exits 0, so a notebook's set-up carries on and FONTS
# then says how many faces it found.  Extra arguments go to apt-get (e.g. --simulate).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
wanted="$(font_packages) fontconfig"
# shellcheck disable=SC2086
missing=$(missing_packages $wanted)
if [ -z "$missing" ]; then
    echo "install-font-packages: all $(echo $wanted | wc -w) packages are installed already"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-font-packages: $(echo $missing | wc -w) font packages are missing, and installing them" \
         "needs root and apt-get; FONTS will use the fonts this machine has. To install them:" >&2
    echo "  sudo bash $(pwd)/scripts/install-font-packages.sh" >&2
    exit 0
fi
apt-get update -qq
# shellcheck disable=SC2086
available=$( (apt-cache show --no-all-versions $missing 2>/dev/null || true) | awk '/^Package: /{print $2}' | sort -u)
echo "install-font-packages: installing $(echo $available | wc -w) of the $(echo $missing | wc -w) missing packages" \
     "(the others are not in this machine's archive)"
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" $available >/dev/null
echo "install-font-packages: done"
