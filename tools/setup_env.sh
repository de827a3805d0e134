#!/usr/bin/env bash
# Create (or reuse) the project virtual environment and install the pinned
# OpenMMLab stack into it. Safe to run repeatedly: a finished set-up is recorded
# in <venv>/.mmdyn-stamp, and mmcv (built from source with its compiled ops) is
# built once per machine and kind of build and cached under ${MMDYN_CACHE:-~/.cache/mmdyn}.
#
# On a machine with an NVIDIA GPU (nvidia-smi, or the torch in use, sees one)
# mmcv is built with CUDA ops for the detected compute capabilities only; without
# one, with CPU ops. Both builds are cached side by side.
#
# Environment switches (docs/gpu.md):
#   PYTHON=python3.11      interpreter for the venv (MMDYN_TORCH=system: the one whose torch is reused)
#   MMDYN_VENV=DIR         the virtual environment (default: ./.venv)
#   MMDYN_CACHE=DIR        where built mmcv wheels are cached (default: ~/.cache/mmdyn)
#   MMDYN_TORCH=pinned     install torch/torchvision at the pinned versions (default)
#   MMDYN_TORCH=system     reuse PYTHON's torch/torchvision: venv with --system-site-packages
#   MMDYN_MMCV_CUDA=auto   mmcv ops: auto (CUDA iff a GPU is found, default), 1 (CUDA), 0 (CPU)
#   MMDYN_CUDA_ARCH="9.0"  compute capabilities to build for (default: the GPUs found;
#                          TORCH_CUDA_ARCH_LIST is honoured too)
#   CUDA_HOME=DIR          CUDA toolkit whose bin/nvcc builds the CUDA ops (else nvcc on PATH)
#   MMDYN_WHEELS=DIR       install only from this folder (pip --no-index --find-links DIR);
#                          fill it with tools/download_wheels.sh on a machine with an index
#   MMDYN_MMCV_JOBS=N      parallel compile jobs for mmcv (default: nproc)
#   MMDYN_SETUP_DRY_RUN=1  print the decisions and every command, change nothing (= --dry-run)
# Options:
#   --dry-run              as MMDYN_SETUP_DRY_RUN=1
#   --print-requirements   print "KIND REQUIREMENT" lines of everything pip installs
#                          (KIND: pip, build, torch, mmcv-runtime, stack, sdist) and exit
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMDYN_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
CACHE="${MMDYN_CACHE:-$HOME/.cache/mmdyn}"
DRY_RUN="${MMDYN_SETUP_DRY_RUN:-0}"
PRINT_REQUIREMENTS=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --print-requirements) PRINT_REQUIREMENTS=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) printf '[mmdyn setup] ERROR: unknown argument %s (expected --dry-run, --print-requirements or --help)\n' "$arg" >&2; exit 2 ;;
  esac
done

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
# torch.version.cuda of the pinned torch wheel from PyPI (checked again after installing it).
PINNED_TORCH_CUDA=13.0
# torch versions mmdyn has been run with (MMDYN_TORCH=system warns for others; docs/gpu.md).
KNOWN_TORCH_VERSIONS="2.14.1"
MMCV_VERSION=2.1.0
MMENGINE_VERSION=0.10.7
MMDET_VERSION=3.3.0
MMPRETRAIN_VERSION=1.2.0
SETUPTOOLS_SPEC='setuptools>=77,<81'

PIP_REQS=(pip)
BUILD_REQS=("$SETUPTOOLS_SPEC" wheel ninja "numpy>=2,<3")
TORCH_REQS=("torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION")
# mmcv's runtime requirements (installing mmcv with its deps would pull opencv-python with GUI libs)
MMCV_RUNTIME_REQS=(addict packaging Pillow pyyaml yapf opencv-python-headless)
STACK_REQS=("mmengine==$MMENGINE_VERSION" "mmdet==$MMDET_VERSION" "mmpretrain==$MMPRETRAIN_VERSION"
  pycocotools scipy matplotlib tqdm pytest scikit-learn "$SETUPTOOLS_SPEC" "numpy>=2,<3"
  opencv-python-headless "PySide6-Essentials==6.12.0" "onnx==1.23.2" "onnxruntime==1.32.0" "onnxscript==0.7.2")
MMCV_SDIST="mmcv==$MMCV_VERSION"

log() { printf '[mmdyn setup] %s\n' "$*" >&2; }
warn() { printf '[mmdyn setup] WARNING: %s\n' "$*" >&2; }
die() { printf '[mmdyn setup] ERROR: %s\n' "$*" >&2; exit 1; }
plan() { printf '%-22s %s\n' "$1:" "$2"; }   # dry-run report line (stdout)
run() {   # run a command, or print it in a dry run
  if [ "$DRY_RUN" = 1 ]; then printf 'would run:'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}

MODE="${MMDYN_TORCH:-pinned}"
case "$MODE" in
  pinned|system) ;;
  *) die "MMDYN_TORCH must be 'pinned' (install torch $TORCH_VERSION) or 'system' (reuse the torch of PYTHON=$PY), got '$MODE'" ;;
esac

if [ "$PRINT_REQUIREMENTS" = 1 ]; then
  for r in "${PIP_REQS[@]}"; do echo "pip $r"; done
  for r in "${BUILD_REQS[@]}"; do echo "build $r"; done
  if [ "$MODE" = pinned ]; then for r in "${TORCH_REQS[@]}"; do echo "torch $r"; done; fi
  for r in "${MMCV_RUNTIME_REQS[@]}"; do echo "mmcv-runtime $r"; done
  for r in "${STACK_REQS[@]}"; do echo "stack $r"; done
  echo "sdist $MMCV_SDIST"
  exit 0
fi

# ------------------------------------------ switches checked up front (the dry run too)
# why the folder $1 cannot be made (nothing when it can): the nearest existing
# folder on its path must be a writable folder
why_not_creatable() {
  local p="$1"
  while [ ! -e "$p" ] && [ "$p" != "$(dirname "$p")" ]; do p="$(dirname "$p")"; done
  if [ ! -d "$p" ]; then
    if [ "$p" = "$1" ]; then echo "it is a file, not a folder"; else echo "$p is a file, not a folder"; fi
  elif [ ! -w "$p" ] || [ ! -x "$p" ]; then
    echo "$p is not writable"
  fi
}
if [ -n "${MMDYN_MMCV_JOBS:-}" ] && ! [[ "$MMDYN_MMCV_JOBS" =~ ^[1-9][0-9]*$ ]]; then
  die "MMDYN_MMCV_JOBS must be a whole number of parallel compile jobs (1 or more), got '$MMDYN_MMCV_JOBS'"
fi
VENV_NAME="$([ -n "${MMDYN_VENV:-}" ] && echo "MMDYN_VENV=$VENV" || echo "the venv folder $VENV")"
if [ ! -x "$VENV/bin/python" ]; then
  why="$(why_not_creatable "$VENV")"
  [ -z "$why" ] || die "$VENV_NAME cannot be created: $why; set MMDYN_VENV to a folder of its own"
fi

# ------------------------------------------------------------- where pip installs from
PIP_SOURCE=()
if [ -n "${MMDYN_WHEELS:-}" ]; then
  [ -d "$MMDYN_WHEELS" ] || die "MMDYN_WHEELS=$MMDYN_WHEELS is not a folder (fill one with: tools/download_wheels.sh DIR)"
  WHEELS="$(cd "$MMDYN_WHEELS" && pwd)"
  PIP_SOURCE=(--no-index --find-links "$WHEELS")
  # pip runs started by pip or setuptools (build environments) must stay offline too
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELS"
fi

# ----------------------------------------------------------------- python/torch probe
PROBE_CODE='
import sys, sysconfig
print("python_tag=cp%d%d" % sys.version_info[:2])
print("python_version=%d.%d" % sys.version_info[:2])
print("is_venv=%d" % (sys.prefix != sys.base_prefix))
paths = sysconfig.get_paths()
print("site=" + ":".join(dict.fromkeys([paths["purelib"], paths["platlib"]])))
try:
    import torch
except Exception as err:
    print("torch=")
    print("torch_error=%s: %s" % (type(err).__name__, str(err).splitlines()[0] if str(err) else ""))
else:
    print("torch=" + torch.__version__)
    print("torch_cuda=" + (torch.version.cuda or ""))
    caps = []
    try:
        if torch.cuda.is_available():
            caps = sorted({"%d.%d" % torch.cuda.get_device_capability(i)
                           for i in range(torch.cuda.device_count())})
    except Exception:
        pass
    print("torch_gpu_caps=" + ";".join(caps))
    try:
        import torchvision
        print("torchvision=" + torchvision.__version__)
    except Exception:
        print("torchvision=")
'
# probe PYTHON -> sets P_python_tag, P_python_version, P_is_venv, P_site, P_torch, P_torch_cuda,
# P_torch_gpu_caps, P_torchvision, P_torch_error
probe() {
  local out line
  P_python_tag=""; P_python_version=""; P_is_venv=0; P_site=""; P_torch=""; P_torch_cuda=""
  P_torch_gpu_caps=""; P_torchvision=""; P_torch_error=""
  out="$("$1" -c "$PROBE_CODE" 2>/dev/null)" || return 1
  while IFS= read -r line; do
    case "$line" in
      python_tag=*|python_version=*|is_venv=*|site=*|torch=*|torch_cuda=*|torch_gpu_caps=*|torchvision=*|torch_error=*)
        printf -v "P_${line%%=*}" '%s' "${line#*=}" ;;
    esac
  done <<< "$out"
}

PY_PROBED=0
if [ "$MODE" = system ]; then
  command -v "$PY" >/dev/null 2>&1 || die "MMDYN_TORCH=system: PYTHON=$PY is not an interpreter on PATH"
  probe "$PY" || die "MMDYN_TORCH=system: could not run $PY"
  PY_PROBED=1
  [ -n "$P_torch" ] || die "MMDYN_TORCH=system: $PY cannot import torch ($P_torch_error); set PYTHON to the interpreter that has torch and torchvision, or use MMDYN_TORCH=pinned"
  [ -n "$P_torchvision" ] || die "MMDYN_TORCH=system: $PY has torch $P_torch but no torchvision (mmpretrain needs it); install the torchvision that matches this torch"
  case "$P_torch" in
    0.*|1.*) die "MMDYN_TORCH=system: torch $P_torch is too old (mmdyn needs torch >= 2.0)" ;;
  esac
  TORCH_VER="$P_torch"; TORCH_CUDA="$P_torch_cuda"; PY_TAG="$P_python_tag"
  TORCH_NOTE="from $PY (torchvision $P_torchvision), not installed"
  case " $KNOWN_TORCH_VERSIONS " in
    *" ${P_torch%%+*} "*) ;;
    *) TORCH_NOTE="$TORCH_NOTE; not a verified version (verified: $KNOWN_TORCH_VERSIONS, docs/gpu.md)" ;;
  esac
else
  TORCH_VER="$TORCH_VERSION"; TORCH_CUDA="$PINNED_TORCH_CUDA"
  TORCH_NOTE="install torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION (CUDA $PINNED_TORCH_CUDA build)"
  PY_TAG=""
  if command -v "$PY" >/dev/null 2>&1 || [ -x "$PY" ]; then
    PY_TAG="$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])' 2>/dev/null || true)"
  fi
  if [ -z "$PY_TAG" ] && [ ! -x "$VENV/bin/python" ]; then   # it is to create the venv
    die "PYTHON=$PY is not a Python interpreter that runs (not on PATH, not executable, or it fails to start); set PYTHON to the python3 that is to create the venv $VENV"
  fi
  # with an NVIDIA driver loaded but no nvidia-smi, an existing venv's torch can tell the GPU
  if ! command -v nvidia-smi >/dev/null 2>&1 && { [ -e /proc/driver/nvidia/version ] || [ -e /dev/nvidia0 ]; } \
      && [ -x "$VENV/bin/python" ] && probe "$VENV/bin/python" && [ -n "$P_torch" ]; then
    PY_PROBED=1
  fi
fi

# ------------------------------------------------------------------------ GPU detection
GPU_CAPS=""; GPU_SOURCE=none; GPU_NOTE=""
if command -v nvidia-smi >/dev/null 2>&1; then
  if smi="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null)"; then
    GPU_CAPS="$(printf '%s\n' "$smi" | tr -d ' \r' | grep -E '^[0-9]+\.[0-9]+$' | sort -u -V | paste -sd';' - || true)"
  fi
  if [ -n "$GPU_CAPS" ]; then
    GPU_SOURCE=nvidia-smi
  elif nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    GPU_SOURCE=nvidia-smi
    GPU_NOTE="nvidia-smi lists a GPU but not its compute capability (old driver)"
  else
    GPU_NOTE="nvidia-smi is installed but reports no GPU: $(nvidia-smi 2>&1 | head -n 1 || true)"
  fi
fi
if [ -z "$GPU_CAPS" ] && [ "$PY_PROBED" = 1 ] && [ -n "$P_torch_gpu_caps" ]; then
  GPU_CAPS="$P_torch_gpu_caps"; GPU_SOURCE=torch
fi

# ------------------------------------------------------------------- mmcv CPU or CUDA
CUDA_SWITCH="${MMDYN_MMCV_CUDA:-auto}"
case "$CUDA_SWITCH" in
  auto)
    if [ "$GPU_SOURCE" = none ]; then
      VARIANT=cpu; VARIANT_REASON="no NVIDIA GPU found${GPU_NOTE:+ ($GPU_NOTE)}"
    elif [ -z "$TORCH_CUDA" ]; then
      VARIANT=cpu; VARIANT_REASON="a GPU was found but torch $TORCH_VER is a CPU build"
      warn "a GPU was found but torch $TORCH_VER (from $PY) is a CPU build: building mmcv with CPU ops; install a CUDA build of torch to train on the GPU"
    else
      VARIANT=cuda; VARIANT_REASON="NVIDIA GPU found by $GPU_SOURCE (compute capability ${GPU_CAPS:-unknown})"
    fi ;;
  1)
    VARIANT=cuda; VARIANT_REASON="MMDYN_MMCV_CUDA=1"
    [ -n "$TORCH_CUDA" ] || die "MMDYN_MMCV_CUDA=1 but torch $TORCH_VER (from $PY) is a CPU build; use a CUDA build of torch" ;;
  0)
    VARIANT=cpu; VARIANT_REASON="MMDYN_MMCV_CUDA=0"
    if [ "$GPU_SOURCE" != none ]; then
      warn "MMDYN_MMCV_CUDA=0 on a machine with a GPU: mmcv gets CPU ops only, so detectors on CUDA fail in RoIAlign/NMS"
    fi ;;
  *) die "MMDYN_MMCV_CUDA must be auto, 1 or 0, got '$CUDA_SWITCH'" ;;
esac

ARCH_LIST=""; ARCH_SOURCE=""; NVCC=""; NVCC_SOURCE=""; NVCC_CUDA=""; CUDA_ROOT=""
if [ "$VARIANT" = cuda ]; then
  # ---- compute capabilities to compile for
  if [ -n "${MMDYN_CUDA_ARCH:-}" ]; then
    ARCH_LIST="$MMDYN_CUDA_ARCH"; ARCH_SOURCE=MMDYN_CUDA_ARCH
  elif [ -n "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    ARCH_LIST="$TORCH_CUDA_ARCH_LIST"; ARCH_SOURCE=TORCH_CUDA_ARCH_LIST
  elif [ -n "$GPU_CAPS" ]; then
    ARCH_LIST="$GPU_CAPS"; ARCH_SOURCE="the GPU(s) found by $GPU_SOURCE"
  fi
  ARCH_LIST="$(printf '%s' "$ARCH_LIST" | tr ' ,' ';;' | tr -s ';' | sed 's/^;//; s/;$//')"
  if [ -z "$ARCH_LIST" ]; then
    die "mmcv is to be built with CUDA ops but the GPU's compute capability is unknown; set MMDYN_CUDA_ARCH (e.g. 9.0 for H100/H200, 8.0 for A100, 8.6 for RTX 30xx/A10, 8.9 for L4/RTX 40xx)"
  fi
  IFS=';' read -r -a arch_items <<< "$ARCH_LIST"
  for a in "${arch_items[@]}"; do
    [[ "$a" =~ ^[0-9]+\.[0-9]+(\+PTX)?$ ]] || die "bad compute capability '$a' in $ARCH_SOURCE='$ARCH_LIST'; expected e.g. 9.0 or '8.0;9.0+PTX'"
  done
  # ---- nvcc: CUDA_HOME, then PATH
  if [ -n "${CUDA_HOME:-}" ]; then
    [ -x "$CUDA_HOME/bin/nvcc" ] || die "CUDA_HOME=$CUDA_HOME has no bin/nvcc; point CUDA_HOME at the CUDA toolkit folder (the one with bin/nvcc) or unset it"
    NVCC="$CUDA_HOME/bin/nvcc"; NVCC_SOURCE=CUDA_HOME; CUDA_ROOT="$CUDA_HOME"
  elif command -v nvcc >/dev/null 2>&1; then
    NVCC="$(command -v nvcc)"; NVCC_SOURCE=PATH
  fi
  if [ -z "$NVCC" ]; then
    need="${TORCH_CUDA%%.*}"
    hint=""
    for d in /usr/local/cuda /usr/local/cuda-"$TORCH_CUDA"; do
      if [ -x "$d/bin/nvcc" ]; then hint=" There is one in $d: export CUDA_HOME=$d"; break; fi
    done
    die "mmcv is to be built with CUDA ops ($VARIANT_REASON) but no nvcc was found (CUDA_HOME is unset and nvcc is not on PATH).${hint} Install the CUDA $need.x toolkit (torch $TORCH_VER is built for CUDA $TORCH_CUDA), e.g. 'sudo apt-get install cuda-toolkit-${TORCH_CUDA/./-}' from NVIDIA's apt repository or 'conda install -c nvidia cuda-toolkit=$TORCH_CUDA', then 'export CUDA_HOME=/usr/local/cuda-$TORCH_CUDA' (the folder with bin/nvcc) and rerun; or set MMDYN_MMCV_CUDA=0 for CPU-only ops (detectors then fail on the GPU)."
  fi
  NVCC_CUDA="$("$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1 || true)"
  [ -n "$NVCC_CUDA" ] || die "could not read the CUDA version from '$NVCC --version'"
  if [ "${NVCC_CUDA%%.*}" != "${TORCH_CUDA%%.*}" ]; then
    die "CUDA major versions disagree: torch $TORCH_VER is built for CUDA $TORCH_CUDA but $NVCC ($NVCC_SOURCE) is CUDA $NVCC_CUDA. Point CUDA_HOME at a CUDA ${TORCH_CUDA%%.*}.x toolkit, or use a torch built for CUDA ${NVCC_CUDA%%.*} (MMDYN_TORCH=system), or MMDYN_MMCV_CUDA=0 for CPU-only ops."
  fi
  # ---- the toolkit folder (headers) that torch's extension builder needs as CUDA_HOME
  if [ -z "$CUDA_ROOT" ]; then
    real="$(readlink -f "$NVCC")"
    CUDA_ROOT="$(dirname "$(dirname "$real")")"
    if [ ! -f "$CUDA_ROOT/include/cuda_runtime.h" ]; then   # e.g. a wrapper script on PATH
      top="$(cd "${TMPDIR:-/tmp}" && "$NVCC" --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n 1 || true)"
      [ -n "$top" ] && CUDA_ROOT="$(cd "$top" 2>/dev/null && pwd || true)"   # TOP=<toolkit>/bin/..
    fi
  fi
  if [ ! -f "$CUDA_ROOT/include/cuda_runtime.h" ] && [ ! -f "$CUDA_ROOT/targets/$(uname -m)-linux/include/cuda_runtime.h" ]; then
    die "found $NVCC but no CUDA headers (include/cuda_runtime.h) under '$CUDA_ROOT'; set CUDA_HOME to the CUDA toolkit folder"
  fi
fi

# ---------------------------------------------------------------------- cache key
if [ "$VARIANT" = cuda ]; then
  ARCH_KEY="$(printf '%s' "$ARCH_LIST" | sed 's/+PTX/ptx/g; s/\.//g; s/;/-/g')"
  CACHE_KEY="mmcv-${MMCV_VERSION}-torch${TORCH_VER}-cuda${TORCH_CUDA}-arch${ARCH_KEY}"
else
  CACHE_KEY="mmcv-${MMCV_VERSION}-torch${TORCH_VER}-cpu"
fi
WHEEL_DIR="$CACHE/wheels/$CACHE_KEY"
STAMP="$VENV/.mmdyn-stamp"
SETUP_HASH="$(cat "$ROOT/setup.py" "${BASH_SOURCE[0]}" | sha1sum | cut -c1-12)"
STAMP_TEXT="torch=$TORCH_VER/$MODE mmcv=$CACHE_KEY mmengine=$MMENGINE_VERSION mmdet=$MMDET_VERSION mmpretrain=$MMPRETRAIN_VERSION wheels=${WHEELS:-index} setup=$SETUP_HASH"

find_cached_wheel() {   # the cached mmcv wheel for this Python, if any
  CACHED_WHEEL=""
  local w
  for w in "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-"${1:-cp}"*.whl; do
    if [ -f "$w" ]; then CACHED_WHEEL="$w"; return 0; fi
  done
  return 0
}
find_cached_wheel "$PY_TAG"

STAMP_STATE=stale
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ] && [ -x "$VENV/bin/python" ]; then
  STAMP_STATE="up to date"
fi
if [ -z "$CACHED_WHEEL" ] && [ "$STAMP_STATE" = stale ]; then   # mmcv is to be built into the cache
  why="$(why_not_creatable "$WHEEL_DIR")"
  [ -z "$why" ] || die "the mmcv wheel cache $WHEEL_DIR cannot be created: $why; set MMDYN_CACHE to a writable folder"
fi
MMCV_JOBS="${MMDYN_MMCV_JOBS:-$(nproc)}"

if [ "$DRY_RUN" = 1 ]; then
  plan mode "$MODE"
  plan python "$PY${PY_TAG:+ ($PY_TAG)}"
  plan venv "$VENV$([ "$MODE" = system ] && echo ' (--system-site-packages)')$([ -x "$VENV/bin/python" ] && echo ', exists' || echo ', to be created')"
  plan torch "$TORCH_VER ($TORCH_NOTE)"
  plan torch_cuda "${TORCH_CUDA:-none (CPU build)}"
  plan gpu "$([ "$GPU_SOURCE" = none ] && echo none || echo "${GPU_CAPS:-capability unknown} (found by $GPU_SOURCE)")${GPU_NOTE:+; $GPU_NOTE}"
  plan mmcv_ops "$VARIANT ($VARIANT_REASON)"
  if [ "$VARIANT" = cuda ]; then
    plan cuda_arch_list "$ARCH_LIST (from $ARCH_SOURCE)"
    plan nvcc "$NVCC (CUDA $NVCC_CUDA, from $NVCC_SOURCE)"
    plan cuda_home "$CUDA_ROOT"
  fi
  plan cache_key "$CACHE_KEY"
  plan cache_dir "$WHEEL_DIR"
  plan cached_wheel "${CACHED_WHEEL:-none (mmcv will be built)}"
  [ -n "$CACHED_WHEEL" ] || plan mmcv_jobs "$MMCV_JOBS$([ -n "${MMDYN_MMCV_JOBS:-}" ] && echo ' (from MMDYN_MMCV_JOBS)' || echo ' (nproc)')"
  plan packages_from "$([ -n "${WHEELS:-}" ] && echo "$WHEELS (pip --no-index --find-links)" || echo 'the package index')"
  plan stamp "$STAMP_STATE"
  plan stamp_text "$STAMP_TEXT"
fi

if [ "$STAMP_STATE" = "up to date" ]; then
  log "environment up to date ($VENV)"
  exit 0
fi

# ------------------------------------------------------------------------- venv
if [ "$MODE" = system ]; then
  log "torch $TORCH_VER (CUDA ${TORCH_CUDA:-none}) from $PY is reused (MMDYN_TORCH=system)"
  if [ -x "$VENV/bin/python" ] && ! grep -qi '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg" 2>/dev/null; then
    die "$VENV exists without --system-site-packages (a pinned-torch venv); remove it or choose another MMDYN_VENV for MMDYN_TORCH=system"
  fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment in $VENV"
  if [ "$MODE" = system ]; then
    run "$PY" -m venv --system-site-packages "$VENV" || die "could not create a venv with $PY (install python3-venv)"
    if [ "$P_is_venv" = 1 ]; then
      # PYTHON is itself a venv: --system-site-packages exposes only its base
      # interpreter, so its own site-packages (with torch) are added by a .pth file.
      pth="$VENV/lib/python$P_python_version/site-packages/_mmdyn_system_torch.pth"
      if [ "$DRY_RUN" = 1 ]; then
        echo "would write: $pth (${P_site//:/ })"
      else
        printf '%s\n' ${P_site//:/ } > "$pth"
      fi
    fi
  else
    run "$PY" -m venv "$VENV" || die "could not create a venv with $PY (install python3-venv)"
  fi
fi
VPY="$VENV/bin/python"
pip_install() { run "$VPY" -m pip --disable-pip-version-check install ${PIP_SOURCE[@]+"${PIP_SOURCE[@]}"} "$@"; }

if [ "$MODE" = system ] && [ "$DRY_RUN" != 1 ]; then
  seen="$("$VPY" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)"
  [ "$seen" = "$TORCH_VER" ] || die "the venv $VENV sees torch '${seen:-none}', not $TORCH_VER from $PY; remove $VENV and rerun"
fi

# ------------------------------------------------------------------- torch, build tools
if [ "$MODE" = pinned ]; then
  log "installing torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION and build tools"
  pip_install -q --upgrade "${PIP_REQS[@]}"
  pip_install -q "${BUILD_REQS[@]}" "${TORCH_REQS[@]}"
  if [ "$DRY_RUN" != 1 ]; then
    read -r seen_torch seen_cuda seen_gpu < <("$VPY" -c 'import torch; print(torch.__version__, torch.version.cuda or "none", int(torch.cuda.is_available()))')
    if [ "$VARIANT" = cuda ]; then
      if [ "${seen_cuda%%.*}" != "${NVCC_CUDA%%.*}" ]; then
        die "CUDA major versions disagree: the installed torch $seen_torch is built for CUDA $seen_cuda but $NVCC is CUDA $NVCC_CUDA"
      fi
      if [ "$GPU_SOURCE" != none ] && [ "$seen_gpu" != 1 ]; then
        warn "torch $seen_torch (CUDA $seen_cuda) cannot use the GPU (driver older than CUDA $seen_cuda needs?): check nvidia-smi, or reuse a torch that matches the driver with MMDYN_TORCH=system (docs/gpu.md)"
      fi
    fi
    [ -n "$PY_TAG" ] || { PY_TAG="$("$VPY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"; find_cached_wheel "$PY_TAG"; }
  fi
else
  log "installing build tools (torch comes from $PY)"
  pip_install -q --upgrade "${PIP_REQS[@]}"
  pip_install -q "${BUILD_REQS[@]}"
fi

# ---------------------------------------------------------------- mmcv with ops
if [ -z "$CACHED_WHEEL" ]; then
  if [ "$VARIANT" = cuda ]; then
    log "building mmcv $MMCV_VERSION with CUDA ops for compute capability $ARCH_LIST (nvcc $NVCC_CUDA); this takes a while, once per machine"
  else
    log "building mmcv $MMCV_VERSION with CPU ops; this takes ~8-10 minutes once per machine"
  fi
  BUILD="$(mktemp -d)"
  trap 'rm -rf "$BUILD"' EXIT
  run "$VPY" -m pip --disable-pip-version-check download ${PIP_SOURCE[@]+"${PIP_SOURCE[@]}"} -q \
    --no-deps --no-build-isolation --no-binary :all: -d "$BUILD" "$MMCV_SDIST"
  SRC="$BUILD/mmcv-$MMCV_VERSION"
  # torch >= 2.4 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17 (also for nvcc).
  if [ "$DRY_RUN" = 1 ]; then
    echo "would patch: -std=c++17 -> -std=c++20 in $SRC/setup.py"
  else
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    grep -q -- '-std=c++17' "$SRC/setup.py" || die "mmcv setup.py has no -std=c++17 flag to patch"
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  fi
  export MMCV_WITH_OPS=1
  export MAX_JOBS="$MMCV_JOBS"
  if [ "$VARIANT" = cuda ]; then
    export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH_LIST" CUDA_HOME="$CUDA_ROOT"
    export PATH="$(dirname "$NVCC"):$PATH"
    [ "$DRY_RUN" = 1 ] && echo "would export: FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST='$ARCH_LIST' CUDA_HOME=$CUDA_ROOT"
  else
    export FORCE_CUDA=0
    export CUDA_VISIBLE_DEVICES=""   # make torch report no GPU so mmcv builds CPU ops only
    [ "$DRY_RUN" = 1 ] && echo "would export: FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=''"
  fi
  run mkdir -p "$WHEEL_DIR.tmp"
  if [ "$DRY_RUN" = 1 ]; then
    echo "would run (in $SRC):$(printf ' %q' "$VPY" -m pip --disable-pip-version-check wheel -q --no-build-isolation --no-deps -w "$WHEEL_DIR.tmp" .)"
  else
    (cd "$SRC" && "$VPY" -m pip --disable-pip-version-check wheel -q --no-build-isolation --no-deps -w "$WHEEL_DIR.tmp" .) \
      || die "mmcv build failed (see output above)"
  fi
  run mkdir -p "$WHEEL_DIR"
  if [ "$DRY_RUN" = 1 ]; then
    echo "would move: $WHEEL_DIR.tmp/mmcv-*.whl -> $WHEEL_DIR/"
    CACHED_WHEEL="$WHEEL_DIR/mmcv-$MMCV_VERSION-${PY_TAG:-cpXY}-(built).whl"
  else
    mv -f "$WHEEL_DIR.tmp"/mmcv-*.whl "$WHEEL_DIR"/
    rm -rf "$WHEEL_DIR.tmp"
    find_cached_wheel "$PY_TAG"
    [ -n "$CACHED_WHEEL" ] || die "mmcv build left no wheel for $PY_TAG in $WHEEL_DIR"
  fi
else
  log "reusing cached mmcv wheel $CACHED_WHEEL"
fi
pip_install -q --no-deps --force-reinstall "$CACHED_WHEEL"
pip_install -q "${MMCV_RUNTIME_REQS[@]}"

log "installing mmengine, mmdet, mmpretrain and test tools"
pip_install -q "${STACK_REQS[@]}"
# mmengine pulls opencv-python (GUI build); keep only the headless one.
if [ "$DRY_RUN" = 1 ]; then
  echo "would run (if opencv-python got installed): $(printf '%q' "$VPY") -m pip uninstall -q -y opencv-python"
  pip_install -q --force-reinstall --no-deps opencv-python-headless
elif "$VPY" -m pip show -q opencv-python >/dev/null 2>&1; then
  "$VPY" -m pip --disable-pip-version-check uninstall -q -y opencv-python
  pip_install -q --force-reinstall --no-deps opencv-python-headless
fi
# --use-pep517: an editable wheel from the venv's setuptools even with an old pip (whose
# legacy `setup.py develop` would start another pip without our options)
pip_install -q --no-deps --no-build-isolation --use-pep517 -e "$ROOT"

if [ "$DRY_RUN" = 1 ]; then
  echo "would verify: imports of the stack, an mmcv op on the CPU$([ "$VARIANT" = cuda ] && echo ' and on CUDA when a GPU is visible')"
  echo "would write: $STAMP"
  exit 0
fi

log "verifying the stack"
MMDYN_VARIANT="$VARIANT" "$VPY" - <<'EOF' || die "stack verification failed: see the traceback above"
import importlib, os, sys
for name in ("torch", "torchvision", "mmcv", "mmcv.ops", "mmengine", "mmdet.models",
             "mmpretrain.models", "pycocotools.coco", "mmdyn.ops", "mmdyn.models",
             "PySide6.QtWidgets", "onnx", "onnxruntime"):
    importlib.import_module(name)
import torch, mmcv, mmdet, mmpretrain, mmengine, numpy
from mmcv.ops import nms  # a compiled op: fails if mmcv was built without ops
boxes = torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.]])
nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
ops = "CPU ops"
if os.environ["MMDYN_VARIANT"] == "cuda":
    ops = "CUDA ops"
    if torch.cuda.is_available():  # fails with "not compiled with GPU support" on a CPU build
        nms(boxes.cuda(), torch.tensor([0.9, 0.8]).cuda(), 0.5)
        ops += " (checked on " + torch.cuda.get_device_name() + ")"
print(f"[mmdyn setup] ok: torch {torch.__version__}, mmcv {mmcv.__version__} ({ops}), "
      f"mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, "
      f"mmpretrain {mmpretrain.__version__}, numpy {numpy.__version__}", file=sys.stderr)
EOF
echo "$STAMP_TEXT" > "$STAMP"
log "done"
