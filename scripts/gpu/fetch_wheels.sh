#!/usr/bin/env bash
# Download, on a machine that reaches PyPI, the wheels rlsuite needs on a GPU machine that has
# no network: its image holds Python 3.12 with torch (CUDA), numpy, pytest, pytest-xdist,
# tensorboard, tqdm, pyyaml and matplotlib, but none of the packages below.
#
#   bash scripts/gpu/fetch_wheels.sh        # writes .whl/ (about 1.2 MB), checks its size
#
# .whl/ is git-ignored (.gitignore), so it travels to the GPU machine only when the session
# carries it (the device tool's carry: [".whl"]); scripts/gpu/check.sh installs it there.
# (A checkout whose .gitignore lacks it: add ".whl/" to .git/info/exclude so the wheels are
# never committed.)
#
# The list is what `import rlsuite` and collecting the whole test suite (`pytest -m gpu` imports
# every test module) need beyond that image, at the versions scripts/setup.sh's .venv resolved
# (`.venv/bin/pip freeze`); a .venv that resolved others is reported. Left out on purpose:
# pandas (stable-baselines3 declares it, but imports it only for its CSV logger, which no test
# uses) and the optional extras (sweeps, ray, mujoco, peers).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
DEST="${WHEEL_DIR:-.whl}"
MAX_KIB="${MAX_KIB:-16384}"  # far below the 64 MiB a device session may carry

# Runtime dependencies of pyproject.toml missing from the image, and what they pull in.
WHEELS=(
  gymnasium==1.4.0              # rlsuite.core.spaces, the gymnasium export/import
  farama-notifications==0.0.6   # imported by gymnasium
  cloudpickle==2.2.1            # gymnasium's and stable-baselines3's pickling
  hydra-core==1.3.8             # rlsuite.cli / config / sweeps (imported by tests at collection)
  omegaconf==2.3.1              # the config tree (same)
  stable-baselines3==2.9.2      # rlsuite.engine.sb3 and its tests
  cmaes==0.13.1                 # IWOCS's worst-case search (imported when IWOCS runs)
)
# omegaconf 2.3 requires antlr4-python3-runtime 4.9.*, which PyPI has as a source archive only:
# built here into a pure-Python wheel (py3-none-any, valid for the image's Python 3.12).
SDIST_ONLY=(antlr4-python3-runtime==4.9.3)

PLATFORM=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

if [ -x .venv/bin/pip ]; then  # the pins should be what the tests ran with here
  freeze="$(.venv/bin/pip freeze 2>/dev/null | tr '[:upper:]_' '[:lower:]-')"
  for pin in "${WHEELS[@]}" "${SDIST_ONLY[@]}"; do
    name="${pin%%==*}"
    have="$(grep -E "^${name}==" <<<"$freeze" || true)"
    if [ -n "$have" ] && [ "$have" != "$pin" ]; then
      echo "note: .venv has $have, this script pins $pin" >&2
    fi
  done
fi

rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: "${PLATFORM[@]}" -d "$DEST" "${WHEELS[@]}"
"$PY" -m pip wheel -q --no-deps --no-cache-dir -w "$DEST" "${SDIST_ONLY[@]}"

count="$(ls "$DEST"/*.whl | wc -l)"
want=$(( ${#WHEELS[@]} + ${#SDIST_ONLY[@]} ))
if [ "$count" -ne "$want" ]; then
  echo "error: $count wheels in $DEST, expected $want" >&2
  exit 1
fi
for whl in "$DEST"/*.whl; do  # all pure Python: nothing here may depend on the interpreter
  case "$whl" in
    *-py3-none-any.whl | *-py2.py3-none-any.whl) ;;
    *) echo "error: $whl is not a pure-Python wheel" >&2; exit 1 ;;
  esac
done
kib="$(du -sk "$DEST" | cut -f1)"
if [ "$kib" -gt "$MAX_KIB" ]; then
  echo "error: $DEST holds $kib KiB, more than MAX_KIB=$MAX_KIB" >&2
  exit 1
fi
ls -l "$DEST"
echo "$count wheels, $kib KiB in $DEST"
