#!/bin/bash
# VNN-COMP prepare script for verirepair: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Stops a leftover run of this tool, decompresses .gz inputs, and checks that the network and the
# property can be read and fit each other (an unsupported operator, a malformed file or a size
# mismatch skips the instance).
# Exit code 0: ready; 1: skip this instance (the reason is on stderr).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "$1"
CATEGORY=$2
ONNX_FILE=$3
VNNLIB_FILE=$4
echo "Preparing $TOOL_NAME for benchmark instance in category '$CATEGORY' with onnx file '$ONNX_FILE' and vnnlib file '$VNNLIB_FILE'"

kill_leftover
for f in "$ONNX_FILE" "$VNNLIB_FILE"; do
    [ -f "$f" ] || { echo "no such file: $f" >&2; exit 1; }
done
ONNX="$(plain_file "$ONNX_FILE")" || { echo "cannot decompress $ONNX_FILE" >&2; exit 1; }
VNNLIB="$(plain_file "$VNNLIB_FILE")" || { echo "cannot decompress $VNNLIB_FILE" >&2; exit 1; }
# One start of the tool reads both files and checks that their sizes agree (a verification with a
# budget of 10 ms: what it answers does not matter here, only that the inputs were accepted).
"$PYTHON" -m verirepair.cli verify "$ONNX" "$VNNLIB" --timeout 0.01 > /dev/null || exit 1
exit 0
