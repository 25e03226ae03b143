# Sourced by launch scripts: `on_ranks ARGS…` runs `$BIN ARGS…` (a dualign command that is not a training run,
# e.g. eval or rejected-samples) on this machine's `$ranks` ranks with launch/train.sh's rules: one rank runs
# directly with every core; N ranks run under mpirun bound one per core with cores/N BLAS threads each (more
# ranks than cores: oversubscribed, unbound). Pass `--threads "$threads"` to the command; $threads is set here.
# Needs: BIN (the dualign binary), ranks. Environment: MPIRUN_ARGS, DUALIGN_DATA, DUALIGN_CACHE as train.sh.
threads=$(( $(nproc) / ranks )); [ "$threads" -ge 1 ] || threads=1
on_ranks() {
    if [ "$ranks" -eq 1 ]; then
        OPENBLAS_NUM_THREADS=$threads "$BIN" "$@"
    else
        local binding=(--bind-to core --map-by core)
        [ "$ranks" -le "$(nproc)" ] || binding=(--oversubscribe --bind-to none)
        # shellcheck disable=SC2086
        mpirun --allow-run-as-root "${binding[@]}" -np "$ranks" -x OPENBLAS_NUM_THREADS=$threads -x DUALIGN_DATA \
            ${DUALIGN_CACHE:+-x DUALIGN_CACHE} ${MPIRUN_ARGS:-} "$BIN" "$@"
    fi
}
