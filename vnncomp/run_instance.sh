#!/bin/bash
# VNN-COMP run script for verirepair: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
# Verifies the property with our sound and complete engine and writes RESULTS_FILE:
#   sat + the counterexample ((X_0 v) ... (Y_0 v)), confirmed by a float64 forward pass,
#   unsat (proven), timeout, or unknown.
# The whole command ends within TIMEOUT seconds: the engine gets TIMEOUT minus the start-up
# reserve (STARTUP_S, 2 s), and the process is killed at TIMEOUT + 5 s in any case.
# Exit code 0 when the result file was written by the verifier; 1 otherwise (then the file says
# unknown and the reason is on stderr).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
check_version "$1"
CATEGORY=$2
ONNX_FILE=$3
VNNLIB_FILE=$4
RESULTS_FILE=$5
TIMEOUT=$6
STARTUP_S=2
echo "Running $TOOL_NAME on benchmark instance in category '$CATEGORY' with onnx file '$ONNX_FILE', vnnlib file '$VNNLIB_FILE', results file '$RESULTS_FILE' and timeout $TIMEOUT"

if [ -z "$RESULTS_FILE" ] || ! awk -v t="$TIMEOUT" 'BEGIN { exit !(t + 0 > 0) }'; then
    echo "expected: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT (seconds > 0)" >&2
    exit 1
fi
fail() {
    echo "$1" >&2
    printf 'unknown\n' > "$RESULTS_FILE"
    exit 1
}
ONNX="$(plain_file "$ONNX_FILE")" || fail "cannot read $ONNX_FILE"
VNNLIB="$(plain_file "$VNNLIB_FILE")" || fail "cannot read $VNNLIB_FILE"
BUDGET="$(awk -v t="$TIMEOUT" -v s="$STARTUP_S" 'BEGIN { b = t - s; if (b < 0.5 * t) b = 0.5 * t; print b }')"
HARD="$(awk -v t="$TIMEOUT" 'BEGIN { print t + 5 }')"
rm -f "$RESULTS_FILE"
mkdir -p "$WORK"
# Its own process group (setsid), recorded, so that prepare_instance.sh can stop a leftover run.
setsid timeout -s KILL "$HARD" "$PYTHON" -m verirepair.cli verify "$ONNX" "$VNNLIB" --timeout "$BUDGET" \
    --out "$RESULTS_FILE" &
CHILD=$!
echo "$CHILD" > "$PID_FILE"
wait "$CHILD"
CODE=$?
rm -f "$PID_FILE"
if [ "$CODE" -eq 137 ]; then
    echo "killed at TIMEOUT + 5 s" >&2
    printf 'timeout\n' > "$RESULTS_FILE"
    exit 0
fi
if [ "$CODE" -ne 0 ] || [ ! -s "$RESULTS_FILE" ]; then
    fail "verirepair verify ended with exit code $CODE"
fi
exit 0
