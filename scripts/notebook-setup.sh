#!/usr/bin/env bash
# The notebooks' set-up cell where manifold_robustness is not installed yet (a fresh Colab
# runtime): install the font packages FONTS is rendered from (as far as this machine allows), then
# pip-install this checkout, not editable, into the interpreter given as $1 (the notebook's kernel).
set -euo pipefail
python=${1:?usage: notebook-setup.sh PYTHON}
src="$(cd "$(dirname "$0")/.." && pwd)"
bash "$src/scripts/install-font-packages.sh"
"$python" -m pip install -q "$src"
echo "notebook-setup: manifold_robustness installed from $src"
