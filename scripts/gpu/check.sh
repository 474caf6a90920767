#!/usr/bin/env bash
# The GPU check kit: one command for a machine with a CUDA GPU (issue 17). From the repository
# root, with .whl/ (scripts/gpu/fetch_wheels.sh) beside it:
#
#   bash scripts/gpu/check.sh            # results in $OUT (default runs/gpu-check/)
#
# Stages, each under its own `timeout`, each run whatever the previous one gave:
#   1. install   .whl/*.whl into $SITE (default /tmp/site); link the working tree's rlsuite
#                there as the installed package is laid out (rlsuite.envs = envs/, rlsuite.conf
#                = conf/), so no pip install of the project is needed
#   2. info      nvidia-smi, torch's CUDA build and device           -> $OUT/gpu_info.txt
#   3. tests     python -m pytest -m gpu (every test marked gpu)       -> $OUT/gpu_tests.log
#   4. bench     scripts/gpu/bench.py --device $DEVICE                 -> $OUT/benchmarks_gpu.{json,md}
# then $OUT/summary.txt: each stage's exit status and seconds. The exit status is 0 only when
# every stage passed. Whole run: at most TOTAL_SECONDS (460) plus a few seconds: the tests stop
# after TESTS_TIMEOUT (240) s, the benchmark gets the rest (and starts no new section in its
# last 40 s), so a device command of 10 minutes leaves room for the machine's start.
#
# Environment: PYTHON (python3), OUT, SITE, WHEEL_DIR (.whl), DEVICE (cuda), TOTAL_SECONDS,
# TESTS_TIMEOUT, BENCH_ARGS (extra bench.py options, e.g. --quick), PYTEST_ARGS (extra pytest
# options or test paths).
set -uo pipefail  # no -e: a failed stage is recorded and the next one still runs
cd "$(dirname "$0")/../.."
ROOT="$PWD"
PY="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/runs/gpu-check}"
SITE="${SITE:-/tmp/site}"
WHEEL_DIR="${WHEEL_DIR:-.whl}"
DEVICE="${DEVICE:-cuda}"
TOTAL_SECONDS="${TOTAL_SECONDS:-460}"
TESTS_TIMEOUT="${TESTS_TIMEOUT:-240}"
case "$(realpath -m "$SITE")" in  # install_site starts by emptying SITE
  / | "$ROOT" | "$ROOT"/* | "$HOME") echo "SITE=$SITE: must be a scratch folder" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
START=$SECONDS
FAILED=()

note() { echo "$*" | tee -a "$SUMMARY"; }

# stage NAME LIMIT_SECONDS FUNCTION: run the exported FUNCTION in a fresh bash under timeout
# (with pipefail: a function's `cmd | tee log` fails when cmd does); record status and seconds.
stage() {
  local name="$1" limit="$2" fn="$3" t0=$SECONDS rc
  echo "=== stage $name (limit ${limit} s) ==="
  timeout -k 10 "$limit" bash -o pipefail -c "$fn"
  rc=$?
  local what="ok"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    what="TIMED OUT"
  elif [ "$rc" -ne 0 ]; then
    what="FAILED"
  fi
  [ "$what" = ok ] || FAILED+=("$name")
  note "$name: $what (exit $rc, $((SECONDS - t0)) s)"
}

install_site() {
  # Wheels into SITE (none there: the current environment must already have them).
  rm -rf "$SITE" && mkdir -p "$SITE" || return 1
  if compgen -G "$WHEEL_DIR/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "$WHEEL_DIR"/*.whl || return 1
  else
    echo "no $WHEEL_DIR/*.whl: using the packages $PY already has"
  fi
  # The package as pyproject.toml lays it out, pointing into the working tree: each entry of
  # rlsuite/ linked, envs/ and conf/ linked as rlsuite/envs and rlsuite/conf. Modules resolve
  # their repository paths through the links (Path(__file__).resolve()), as in the tree.
  mkdir -p "$SITE/rlsuite"
  local entry
  for entry in "$ROOT"/rlsuite/*; do
    [ "$(basename "$entry")" = __pycache__ ] || ln -s "$entry" "$SITE/rlsuite/"
  done
  ln -s "$ROOT/envs" "$SITE/rlsuite/envs"
  ln -s "$ROOT/conf" "$SITE/rlsuite/conf"
  "$PY" -c "import rlsuite, rlsuite.envs, rlsuite.conf, rlsuite.cli, gymnasium, hydra, \
stable_baselines3; print('rlsuite from', rlsuite.__file__)"
}

device_info() {
  if command -v nvidia-smi > /dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
  # Fails (and so marks the stage) when DEVICE asks for CUDA and torch sees none: the tests
  # would then all skip, which must not read as a pass.
  "$PY" - <<'EOF'
import os, platform, sys, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA build {torch.version.cuda}")
print(f"cuda available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}")
if torch.cuda.is_available():
    print(f"cudnn {torch.backends.cudnn.version()}")
elif os.environ["DEVICE"].startswith("cuda"):
    sys.exit(f"DEVICE={os.environ['DEVICE']} but torch sees no CUDA device")
EOF
}

run_tests() {
  # -m gpu overrides pyproject's "-m 'not slow'"; collection errors (a module that fails to
  # import) are reported but do not stop the gpu tests of the other modules.
  # shellcheck disable=SC2086
  "$PY" -m pytest -m gpu -q -rA -p no:cacheprovider --continue-on-collection-errors \
    --durations=15 ${PYTEST_ARGS:-} 2>&1 | tee "$OUT/gpu_tests.log"
}

run_bench() {
  # --budget: the benchmark starts no new section after this many seconds, so it ends (and has
  # written its files, which it rewrites after every section) before the stage's limit.
  # shellcheck disable=SC2086
  "$PY" scripts/gpu/bench.py --device "$DEVICE" --out-dir "$OUT" \
    --budget $(( BENCH_TIMEOUT - 40 )) ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
}

device_info_logged() { device_info 2>&1 | tee "$OUT/gpu_info.txt"; }

# The working tree's rlsuite comes from SITE only: PYTHONSAFEPATH keeps Python from putting the
# current directory (whose rlsuite/ lacks envs/ and conf/) first on sys.path, in this shell's
# python commands and in their subprocesses.
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONSAFEPATH=1
export PY ROOT OUT SITE DEVICE WHEEL_DIR
export -f install_site device_info device_info_logged run_tests run_bench
stage install 120 install_site
stage info 30 device_info_logged
# The tests get at most TESTS_TIMEOUT, leaving the benchmark at least 90 s; the benchmark gets
# what is left of TOTAL_SECONDS, so a quick test stage leaves it more time.
left() { echo $(( TOTAL_SECONDS - (SECONDS - START) )); }
tests_limit=$(( $(left) - 90 > 30 ? $(left) - 90 : 30 ))
stage tests "$(( TESTS_TIMEOUT < tests_limit ? TESTS_TIMEOUT : tests_limit ))" run_tests
BENCH_TIMEOUT=$(( $(left) - 5 > 60 ? $(left) - 5 : 60 ))
export BENCH_TIMEOUT
stage bench "$BENCH_TIMEOUT" run_bench

note "total: $((SECONDS - START)) s; results in $OUT"
if [ "${#FAILED[@]}" -gt 0 ]; then
  note "failed stages: ${FAILED[*]}"
  exit 1
fi
note "all stages passed"
