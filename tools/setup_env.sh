#!/usr/bin/env bash
# Create (or reuse) the project virtual environment in ./.venv and install the
# pinned OpenMMLab stack into it. Safe to run repeatedly: a finished set-up is
# recorded in .venv/.mmdyn-stamp and the mmcv wheel (with ops) is built once per
# machine and cached under ${MMDYN_CACHE:-~/.cache/mmdyn}.
#
# Environment switches:
#   PYTHON=python3.11        interpreter used to create the venv
#   MMDYN_CACHE=DIR          where the built mmcv wheel is cached
#   MMDYN_MMCV_CUDA=1        build mmcv with CUDA ops (needs a GPU build of torch + nvcc)
#   MMDYN_MMCV_JOBS=N        parallel compile jobs for mmcv (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
MMENGINE_VERSION=0.10.7
MMDET_VERSION=3.3.0
MMPRETRAIN_VERSION=1.2.0
SETUPTOOLS_SPEC='setuptools>=77,<81'

CUDA_FLAG="${MMDYN_MMCV_CUDA:-0}"
VARIANT=cpu
[ "$CUDA_FLAG" = "1" ] && VARIANT=cuda
CACHE="${MMDYN_CACHE:-$HOME/.cache/mmdyn}"
WHEEL_DIR="$CACHE/wheels/mmcv-${MMCV_VERSION}-torch${TORCH_VERSION}-${VARIANT}"
STAMP="$VENV/.mmdyn-stamp"
STAMP_TEXT="torch=$TORCH_VERSION mmcv=$MMCV_VERSION/$VARIANT mmengine=$MMENGINE_VERSION mmdet=$MMDET_VERSION mmpretrain=$MMPRETRAIN_VERSION setup=$(cat "$ROOT/setup.py" "${BASH_SOURCE[0]}" | sha1sum | cut -c1-12)"

log() { printf '[mmdyn setup] %s\n' "$*" >&2; }
die() { printf '[mmdyn setup] ERROR: %s\n' "$*" >&2; exit 1; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ] && [ -x "$VENV/bin/python" ]; then
  log "environment up to date ($VENV)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment in $VENV"
  "$PY" -m venv "$VENV" || die "could not create a venv with $PY (install python3-venv)"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)

log "installing torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION and build tools"
"${PIP[@]}" install -q --upgrade pip
"${PIP[@]}" install -q "$SETUPTOOLS_SPEC" wheel ninja "numpy>=2,<3" \
  "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

# ---------------------------------------------------------------- mmcv with ops
shopt -s nullglob
wheels=("$WHEEL_DIR"/mmcv-*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
  log "building mmcv $MMCV_VERSION with ops ($VARIANT); this takes ~8-10 minutes once per machine"
  BUILD="$(mktemp -d)"
  trap 'rm -rf "$BUILD"' EXIT
  "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary :all: -d "$BUILD" "mmcv==$MMCV_VERSION"
  tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
  SRC="$BUILD/mmcv-$MMCV_VERSION"
  # torch >= 2.4 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
  grep -q -- '-std=c++17' "$SRC/setup.py" || die "mmcv setup.py has no -std=c++17 flag to patch"
  sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  export MMCV_WITH_OPS=1
  export MAX_JOBS="${MMDYN_MMCV_JOBS:-$(nproc)}"
  if [ "$CUDA_FLAG" = "1" ]; then
    command -v nvcc >/dev/null || die "MMDYN_MMCV_CUDA=1 but nvcc is not on PATH"
    export FORCE_CUDA=1
  else
    export FORCE_CUDA=0
    export CUDA_VISIBLE_DEVICES=""   # make torch report no GPU so mmcv builds CPU ops only
  fi
  mkdir -p "$WHEEL_DIR.tmp"
  (cd "$SRC" && "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$WHEEL_DIR.tmp" .) \
    || die "mmcv build failed (see output above)"
  rm -rf "$WHEEL_DIR"; mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
  wheels=("$WHEEL_DIR"/mmcv-*.whl)
else
  log "reusing cached mmcv wheel ${wheels[0]}"
fi
"${PIP[@]}" install -q --no-deps --force-reinstall "${wheels[0]}"
# mmcv's runtime requirements (installed without --no-deps would pull opencv-python with GUI libs)
"${PIP[@]}" install -q addict packaging Pillow pyyaml yapf opencv-python-headless

log "installing mmengine, mmdet, mmpretrain and test tools"
"${PIP[@]}" install -q "mmengine==$MMENGINE_VERSION" "mmdet==$MMDET_VERSION" \
  "mmpretrain==$MMPRETRAIN_VERSION" pycocotools scipy matplotlib tqdm pytest scikit-learn \
  "$SETUPTOOLS_SPEC" "numpy>=2,<3" opencv-python-headless "PySide6-Essentials==6.12.0"
# mmengine pulls opencv-python (GUI build); keep only the headless one.
if "$VPY" -m pip show -q opencv-python >/dev/null 2>&1; then
  "${PIP[@]}" uninstall -q -y opencv-python
  "${PIP[@]}" install -q --force-reinstall --no-deps opencv-python-headless
fi
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

log "verifying the stack"
"$VPY" - <<'EOF' || die "stack verification failed: see the traceback above"
import importlib, sys
for name in ("torch", "torchvision", "mmcv", "mmcv.ops", "mmengine", "mmdet.models",
             "mmpretrain.models", "pycocotools.coco", "mmdyn.ops", "mmdyn.models",
             "PySide6.QtWidgets"):
    importlib.import_module(name)
import torch, mmcv, mmdet, mmpretrain, mmengine, numpy
from mmcv.ops import nms  # a compiled op: fails if mmcv was built without ops
boxes = torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.]])
nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
print(f"[mmdyn setup] ok: torch {torch.__version__}, mmcv {mmcv.__version__} (ops), "
      f"mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, "
      f"mmpretrain {mmpretrain.__version__}, numpy {numpy.__version__}", file=sys.stderr)
EOF
echo "$STAMP_TEXT" > "$STAMP"
log "done"
