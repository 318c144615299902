# Sourced by setup.sh and install-font-packages.sh: which Debian packages are missing.
#   font_packages        the names in scripts/font-packages.txt (comments and blank lines dropped)
#   missing_packages P…  those of P… that dpkg does not list as installed, space-separated
font_packages() {
    grep -v -E '^\s*(#|$)' "$(dirname "${BASH_SOURCE[0]}")/font-packages.txt" | tr '\n' ' '
}

missing_packages() {
    # One dpkg-query for all of them (0.1 s; one per package took 2.2 s for the 166 font packages).
    # It lists the packages dpkg knows and exits 1 when some are unknown: those are missing too.
    local installed p missing=""
    installed=" $( (dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true) \
                   | awk '/ install ok installed$/ {printf "%s ", $1}')"
    for p in "$@"; do
        case "$installed" in *" $p "*) ;; *) missing="$missing $p" ;; esac
    done
    echo "$missing"
}
