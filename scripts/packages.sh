# Sourced by setup.sh and install-font-packages.sh: which Debian packages are missing.
#   font_packages        the names in scripts/font-packages.txt (comments and blank lines dropped)
#   missing_packages P…  those of P… that dpkg does not list as installed, space-separated
font_packages() {
    grep -v -E '^\s*(#|$)' "$(dirname "${BASH_SOURCE[0]}")/font-packages.txt" | tr '\n' ' '
}

missing_packages() {
    local p missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    echo "$missing"
}
