#!/usr/bin/env bash
# Installs the Debian packages Aster needs, and only those that are missing.
#   scripts/deps.sh build   compiler, CMake and the libraries aster links
#   scripts/deps.sh test    build + test framework, analysers, test peers
# When a package cannot be installed (not root, no network), prints the exact
# apt-get line to run and exits non-zero.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev
            libuv1-dev libjansson-dev libsqlite3-dev libpq-dev libssl-dev uthash-dev tzdata)
test_pkgs=(libcmocka-dev postgresql python3 python3-pytest python3-yaml python3-prometheus-client clang-format cppcheck sqlite3)

case "${1:-build}" in
build) want=("${build_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
*) echo "usage: scripts/deps.sh build|test" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO=sudo
    else
        echo "aster: missing packages; run as root: apt-get update && $line" >&2
        exit 1
    fi
else
    SUDO=
fi
echo "aster: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Try without refreshing the lists first: it is fast when they are recent.
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    if ! { $SUDO apt-get update -q >/dev/null && \
           $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }; then
        echo "aster: could not install packages; run: apt-get update && $line" >&2
        exit 1
    fi
fi
