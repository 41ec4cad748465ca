#!/usr/bin/env bash
# The GPU check (workflows/gpu_check.py) on a GPU machine that reaches no package registry (an
# air-gapped or borrowed machine with its own CUDA build of torch), and the wheels it needs there.
#
#   bash workflows/gpu_check.sh wheels          # here, once: the wheels the GPU machine lacks, into .whl/
#   bash workflows/gpu_check.sh [BUDGET_S]      # there: install, run the check, results into $OUT
#
# Such a machine's python3 is assumed to hold a CUDA build of torch and most of what the project
# needs; the rest travels as wheels in .whl/ (keep it out of git, e.g. in .git/info/exclude, and copy
# it along with the working tree), installed with --no-deps into /tmp/site. The project itself is not installed: the repository root goes on
# PYTHONPATH, so the check imports the working tree that travelled. torch is never carried (GBs):
# the check runs on the machine's torch and says which it is.
#
# The check writes into /tmp/gpu_check as it goes; at the end (or when the time limit stops it) this
# script packs that folder into $OUT/gpu_check.tar.gz (one file is easy to bring back; OUT defaults
# to /tmp/gpu_check_out) and copies the summary and log beside it. BUDGET_S (default 420) bounds the check; the hard limit is
# BUDGET_S + 45 s, so a device call needs timeout_s >= BUDGET_S + 90 (install and packing included).
set -u
cd "$(dirname "$0")/.."

# The project's needs the GPU image lacks, at constraints.txt's versions (the pure-Python ones and
# bitsandbytes; rpds-py is compiled). The GPU image's python3 is CPython 3.12 on x86-64.
WHEELS="bitsandbytes pytorch_optimizer sophia-opt schedulefree prodigyopt dadaptation jsonschema
jsonschema-specifications referencing rpds-py"

pinned() {   # NAME==VERSION from constraints.txt (names compared as pip does: case, - and _ alike)
    local want
    want=$(echo "$1" | tr 'A-Z_' 'a-z-')
    awk -F'[=;]+' -v w="$want" '{n=tolower($1); gsub("_","-",n); if (n==w) {print $1"=="$2; exit}}' constraints.txt
}

download_wheels() {
    mkdir -p .whl
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    local platforms="" n spec
    for n in 28 27 24 17; do platforms="$platforms --platform manylinux_2_${n}_x86_64"; done
    for name in $WHEELS; do
        spec=$(pinned "$name")
        [ -n "$spec" ] || { echo "gpu_check.sh: $name is not pinned in constraints.txt" >&2; return 1; }
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            $platforms --platform manylinux2014_x86_64 -d .whl "$spec" 2>/dev/null ||
        python3 -m pip wheel -q --no-deps -w .whl "$spec" ||   # published as an sdist only: built here
        { echo "gpu_check.sh: no wheel for $spec" >&2; return 1; }
    done
    slim_bitsandbytes
    du -ch .whl/*.whl
}

# bitsandbytes' wheel holds a library for each CUDA and ROCm release (42 MiB, more than the rest of
# what travels together): keep the CPU's and CUDA 13's, what a cu13x torch loads (the GPU
# image's torch is one), and drop the others from the wheel and its RECORD.
slim_bitsandbytes() {
    python3 - .whl/bitsandbytes-*.whl <<'EOF'
import re, sys, zipfile
path = sys.argv[1]
drop = re.compile(r"bitsandbytes/libbitsandbytes_(rocm\d+|cuda1[0-2]\d)\.(so|dll|dylib)$")
with zipfile.ZipFile(path) as z:
    items = [(i, z.read(i)) for i in z.infolist() if not drop.search(i.filename)]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for info, data in items:
        if info.filename.endswith(".dist-info/RECORD"):
            data = b"".join(l for l in data.splitlines(keepends=True) if not drop.search(l.split(b",")[0].decode()))
        z.writestr(info, data, zipfile.ZIP_DEFLATED)
EOF
}

if [ "${1:-}" = "wheels" ]; then
    download_wheels
    exit $?
fi

BUDGET=${1:-420}
OUT=${OUT:-/tmp/gpu_check_out}
WORK=/tmp/gpu_check
mkdir -p "$OUT"
rm -rf "$WORK"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check.sh: installing the carried wheels failed" >&2; exit 3; }
    export PYTHONPATH="/tmp/site:$PWD"
else
    echo "gpu_check.sh: no .whl/ carried: bitsandbytes and the optimizer libraries may be missing" >&2
    export PYTHONPATH="$PWD"
fi
set -o pipefail
timeout -k 10 $((BUDGET + 45)) python3 -m workflows.gpu_check "$WORK" "$BUDGET" 2>&1 | tee "$OUT/gpu_check.log"
status=$?
tar czf "$OUT/gpu_check.tar.gz" -C /tmp gpu_check 2>/dev/null
cp "$WORK/summary.jsonl" "$OUT/" 2>/dev/null
echo "gpu_check.sh: exit $status; results in $OUT/gpu_check.tar.gz"
exit $status
