#!/bin/bash
# Shared by the VNN-COMP scripts of verirepair (sourced, not run).
#
# REPO     the repository (this file's parent folder)
# PYTHON   the interpreter that has verirepair installed: $VERIREPAIR_PYTHON, else REPO/.venv/bin/python
# WORK     scratch folder for decompressed inputs and the PID of a running instance
#          ($VERIREPAIR_VNNCOMP_WORK, else ${TMPDIR:-/tmp}/verirepair-vnncomp-$USER)

VERSION_STRING=v1
TOOL_NAME=verirepair
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." &> /dev/null && pwd)"
PYTHON="${VERIREPAIR_PYTHON:-$REPO/.venv/bin/python}"
WORK="${VERIREPAIR_VNNCOMP_WORK:-${TMPDIR:-/tmp}/verirepair-vnncomp-${USER:-$(id -u)}}"
PID_FILE="$WORK/run_instance.pid"

check_version() {
    if [ "$1" != "$VERSION_STRING" ]; then
        echo "Expected first argument (version string) '$VERSION_STRING', got '$1'" >&2
        exit 1
    fi
}

# plain_file PATH: PATH itself, or for PATH.gz its decompressed copy in $WORK (made once).
plain_file() {
    local path="$1"
    case "$path" in
        *.gz)
            mkdir -p "$WORK/inputs"
            local key
            key="$(printf '%s' "$(realpath "$path")" | sha256sum | cut -c1-16)"
            local out="$WORK/inputs/$key-$(basename "${path%.gz}")"
            if [ ! -s "$out" ]; then
                gzip -dc "$path" > "$out.part" && mv "$out.part" "$out" || { rm -f "$out.part"; return 1; }
            fi
            printf '%s\n' "$out"
            ;;
        *) printf '%s\n' "$path" ;;
    esac
}

# kill_leftover: stop the process group of an earlier run_instance.sh that is still running
# (only ours: the PID this tool recorded, never other processes by name).
kill_leftover() {
    if [ -f "$PID_FILE" ]; then
        local pid
        pid="$(cat "$PID_FILE")"
        if [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null; then
            kill -KILL -- "-$pid" 2> /dev/null || kill -KILL "$pid" 2> /dev/null
        fi
        rm -f "$PID_FILE"
    fi
}
