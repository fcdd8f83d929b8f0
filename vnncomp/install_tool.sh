#!/bin/bash
# VNN-COMP install script for verirepair: install_tool.sh v1
# Creates REPO/.venv with Python 3.11 (or uses $VERIREPAIR_PYTHON if it is set and works) and
# installs verirepair into it. Exit code 0 on success.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "$1"

if [ -n "$VERIREPAIR_PYTHON" ]; then
    "$VERIREPAIR_PYTHON" -c "import verirepair" || { echo "VERIREPAIR_PYTHON=$VERIREPAIR_PYTHON cannot import verirepair" >&2; exit 1; }
    echo "using $VERIREPAIR_PYTHON"
    exit 0
fi
PY311="$(command -v python3.11)" || { echo "python3.11 is needed (the tool requires Python 3.11 exactly)" >&2; exit 1; }
"$PY311" -m venv "$REPO/.venv" || exit 1
"$REPO/.venv/bin/pip" install -q -e "$REPO" || exit 1
"$REPO/.venv/bin/python" -m verirepair.cli --version || exit 1
exit 0
