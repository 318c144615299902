#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages (fonts for FONTS, Fashion-MNIST)
# and a virtual environment with the package installed in editable mode.  Safe to run repeatedly:
# each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
STAMPS=.stamps
mkdir -p "$STAMPS"

# --- system packages -------------------------------------------------------------------------
source scripts/packages.sh
# shellcheck disable=SC2046
missing=$(missing_packages $(font_packages) fontconfig dataset-fashion-mnist)
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing $(echo $missing | wc -w) Debian packages (fonts for FONTS, Fashion-MNIST)"
        if [ ! -f "$STAMPS/apt-updated" ]; then apt-get update -qq && touch "$STAMPS/apt-updated"; fi
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "setup: not root (or no apt-get), so these packages are not installed:$missing" >&2
        echo "setup: to get the full FONTS and Fashion-MNIST, run:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
        echo "setup: continuing with the fonts this machine has." >&2
    fi
fi

# --- Python environment ----------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv --without-pip .venv
fi
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    # The current pip, put into the venv by this Python's own pip: 3 s, where venv's ensurepip
    # (the pip bundled with Python) and then upgrading that pip took 11 s.  ensurepip where this
    # Python's pip cannot (``--python`` needs pip >= 22.3).
    "$PYTHON" -m pip --python .venv/bin/python install -q --upgrade pip 2>/dev/null \
        || { .venv/bin/python -m ensurepip >/dev/null && .venv/bin/python -m pip install -q --upgrade pip; }
fi
if [ ! -f "$STAMPS/pip" ] || [ pyproject.toml -nt "$STAMPS/pip" ]; then
    # --no-compile: pip would byte-compile every installed file (~1 GB of packages), which took
    # 29 of the install's 65 s on 2 cores.  Only what the package and its tests import is compiled,
    # by importing it once with bytecode writing on (the environment may set
    # PYTHONDONTWRITEBYTECODE; then nothing else would ever write it and every process would
    # compile its imports anew).  Anything else compiles on first import as usual.
    .venv/bin/python -m pip install -q --no-compile -e '.[test]'
    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python scripts/compile_imports.py
    touch "$STAMPS/pip"
fi
