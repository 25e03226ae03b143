#!/usr/bin/env bash
# Runs the whole test suite: kernel and model tests against the PyTorch twin fixtures, formats and
# tokenizers on the real SmolLM2 GGUF and llama.cpp's golden vocabularies, and the multi-rank tests
# that launch `mpirun -np 2`. Installs what is missing first. Exits non-zero on any failure and ends
# with one summary line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

launch/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
for what in vocab pyrit prompts; do
    launch/assets.sh "$what" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
done
# The public data root (../shared/data, or a verified download); tests and the library read DUALIGN_DATA.
DUALIGN_DATA="$(launch/assets.sh data)" || { echo "0 passed, 1 failed"; exit 1; }
export DUALIGN_DATA

# One release build with testing enabled serves the test bundle and the `dualign` binary the
# multi-rank tests launch. BLAS threads: tests that measure nothing run with the default pool.
FLAGS=(-c release -Xswiftc -enable-testing)
if ! swift build "${FLAGS[@]}" --build-tests 2>&1 | tail -n 30; then
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

# XCTest's last "Executed N tests, with [K tests skipped and] M failures" line covers every suite of a run.
total_all=0; failed_all=0; skipped_all=0; status_all=0
count_run() {   # count_run LOG STATUS
    local summary total failed skipped
    summary=$(grep -E "Executed [0-9]+ tests?, with .*[0-9]+ failures?" "$1" | tail -n 1)
    if [ -z "$summary" ]; then
        echo "no test summary (the test run crashed?)"
        failed_all=$((failed_all + 1)); status_all=1
        return
    fi
    total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
    failed=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
    skipped=0
    if grep -qE "[0-9]+ tests? skipped" <<<"$summary"; then
        skipped=$(sed -E 's/.* ([0-9]+) tests? skipped.*/\1/' <<<"$summary")
    fi
    if [ "$2" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    [ "$2" -ne 0 ] && status_all=1
    total_all=$((total_all + total)); failed_all=$((failed_all + failed)); skipped_all=$((skipped_all + skipped))
}

log=$(mktemp)
swift test "${FLAGS[@]}" --skip-build 2>&1 | tee "$log"
count_run "$log" "${PIPESTATUS[0]}"

# The suites that run matrix products, once more under each backend that can run here (the run above
# used the processor's choice, or DUALIGN_MATMUL). BLIS only when its library is installed.
MATMUL_SUITES="KernelTests|MatmulBackendTests|BF16MatmulTests|PyTorchTwinTests|GenerationTests|RealModelParityTests"
backends=(openblas onednn)
ldconfig -p 2>/dev/null | grep -q "libblis.so.4" && backends+=(blis)
for b in "${backends[@]}"; do
    echo "== matrix backend $b: $MATMUL_SUITES"
    DUALIGN_MATMUL=$b swift test "${FLAGS[@]}" --skip-build --filter "$MATMUL_SUITES" 2>&1 | tee "$log"
    count_run "$log" "${PIPESTATUS[0]}"
done
rm -f "$log"
echo "$((total_all - failed_all - skipped_all)) passed, $failed_all failed, $skipped_all skipped"
[ "$status_all" -eq 0 ] && [ "$failed_all" -eq 0 ]
