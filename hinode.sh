#!/usr/bin/env bash
# The two commands of hinode-iot on a fresh Debian/Ubuntu machine:
#
#   ./hinode.sh up   [--data-dir DIR] ...   run the platform with simulated factories
#   ./hinode.sh test [pytest args]          run the whole test suite (what CI runs)
#   ./hinode.sh bench NAME [args]           run one benchmark from bench/ (--list: the names)
#
# Installs what is missing first: Debian's mosquitto and influxdb (and chromium for
# the browser tests) via apt-get, and the locked Python dependencies into .venv.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

command=${1:-}
[ $# -gt 0 ] && shift

say() { printf 'hinode.sh: %s\n' "$*" >&2; }

ensure_debian_packages() {
    local missing=() pkg bin
    for pair in "$@"; do
        pkg=${pair%%:*}; bin=${pair#*:}
        [ -x "$bin" ] || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        say "missing: ${missing[*]}. No apt-get here: install Debian's packages '${missing[*]}' (or the same programs from your distribution) and run again."
        exit 1
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then sudo="sudo"; else
            say "missing: ${missing[*]}. Run as root: apt-get install -y ${missing[*]}"; exit 1
        fi
    fi
    say "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_python() {
    local python=${PYTHON:-python3}
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "Python 3.11 or newer is needed ($python is $("$python" --version 2>&1))"; exit 1
    fi
    local uv
    if command -v uv >/dev/null; then uv=uv; else
        if [ ! -x .tools/bin/uv ]; then
            say "installing uv (to install the locked dependencies) into .tools"
            "$python" -m venv .tools && .tools/bin/pip install -q uv
        fi
        uv=.tools/bin/uv
    fi
    "$uv" sync --frozen --inexact --python "$python" "$@" -q
}

case "$command" in
    up)
        ensure_debian_packages mosquitto:/usr/sbin/mosquitto influxdb:/usr/bin/influxd
        ensure_python --extra edge --extra cloud --extra simulators
        exec .venv/bin/python -m hinode up "$@"
        ;;
    test)
        ensure_debian_packages mosquitto:/usr/sbin/mosquitto influxdb:/usr/bin/influxd chromium:/usr/bin/chromium
        ensure_python --extra all
        # Two workers (this machine and CI have 2 cores), a test file's tests on one of them, in order
        # (--dist loadfile: module fixtures are built once). HINODE_TEST_WORKERS=0 runs serially.
        exec .venv/bin/python -m pytest -n "${HINODE_TEST_WORKERS:-2}" --dist loadfile --durations=15 "$@"
        ;;
    bench)
        # A bench is a bench/NAME.py with its own "## NAME.py" section in bench/README.md; the other
        # scripts there are helpers that the benches import or start.
        benches=$(sed -n 's/^## \([A-Za-z0-9_]*\)\.py\b.*/\1/p' bench/README.md | while read -r b; do
            if [ -f "bench/$b.py" ]; then echo "$b"; fi; done)
        name=${1:-}
        if [ "$name" = --list ]; then echo "$benches"; exit 0; fi
        if [ -z "$name" ]; then
            say "usage: ./hinode.sh bench NAME [options]; NAME is one of: $(echo $benches) (see bench/README.md)"; exit 2
        fi
        if ! grep -qxF -- "$name" <<<"$benches"; then
            say "unknown bench '$name'; NAME is one of: $(echo $benches) (each has a '## NAME.py' section in bench/README.md)"
            exit 2
        fi
        shift
        # mosquitto_sub is the raw-subscriber reference of the ingest and drain benches.
        ensure_debian_packages mosquitto:/usr/sbin/mosquitto influxdb:/usr/bin/influxd mosquitto-clients:/usr/bin/mosquitto_sub
        ensure_python --extra all
        exec .venv/bin/python "bench/$name.py" "$@"
        ;;
    *)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
