#!/usr/bin/env bash
# Fill a folder with everything `MMDYN_WHEELS=DIR bash tools/setup_env.sh` installs, on a
# machine with a package index, for a machine without one (copy DIR over, then set
# MMDYN_WHEELS=DIR there). The list comes from `tools/setup_env.sh --print-requirements`.
#
# Usage: tools/download_wheels.sh DIR [--torch pinned|system] [--python-version X.Y]
#                                     [--platform TAG] [--requirements FILE] [--list]
#   --torch system        leave torch/torchvision out: the target reuses its own torch
#                         (MMDYN_TORCH=system there). Default: pinned (torch wheels, GBs).
#   --python-version X.Y  the target's Python, when it is not this one (wheels only)
#   --platform TAG        the target's platform, e.g. manylinux_2_28_x86_64 (wheels only)
#   --requirements FILE   "KIND REQUIREMENT" lines instead of setup_env.sh's list; KIND
#                         sdist: a source archive, no dependencies (mmcv is built from
#                         source on the target); any other KIND: a wheel + its dependencies
#   --list                print the requirement lines and exit (downloads nothing)
# Env: PYTHON (whose pip downloads; default python3). pip's own settings apply
# (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, ...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
die() { printf '[download_wheels] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

DEST=""; TORCH=pinned; PYVER=""; PLATFORM=""; REQFILE=""; LIST=0
while [ $# -gt 0 ]; do
  case "$1" in
    --torch) [ $# -ge 2 ] || die "--torch needs a value (pinned or system)"; TORCH="$2"; shift 2 ;;
    --python-version) [ $# -ge 2 ] || die "--python-version needs a value (e.g. 3.12)"; PYVER="$2"; shift 2 ;;
    --platform) [ $# -ge 2 ] || die "--platform needs a value (e.g. manylinux_2_28_x86_64)"; PLATFORM="$2"; shift 2 ;;
    --requirements) [ $# -ge 2 ] || die "--requirements needs a file"; REQFILE="$2"; shift 2 ;;
    --list) LIST=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$DEST" ] || die "one destination folder expected, got '$DEST' and '$1'"; DEST="$1"; shift ;;
  esac
done
case "$TORCH" in pinned|system) ;; *) die "--torch must be pinned or system, got '$TORCH'" ;; esac
[ -n "$DEST" ] || [ "$LIST" = 1 ] || die "usage: tools/download_wheels.sh DIR [options] (see --help)"
if [ -n "$PYVER" ] && ! [[ "$PYVER" =~ ^3\.[0-9]+$ ]]; then
  die "--python-version must look like 3.12, got '$PYVER'"
fi

if [ -n "$REQFILE" ]; then
  [ -f "$REQFILE" ] || die "--requirements file not found: $REQFILE"
  REQS="$(grep -v '^[[:space:]]*\(#\|$\)' "$REQFILE" || true)"
else
  REQS="$(MMDYN_TORCH="$TORCH" bash "$ROOT/tools/setup_env.sh" --print-requirements)"
fi
[ -n "$REQS" ] || die "no requirements to download"

BINARIES=(); SDISTS=()
while read -r kind req rest; do
  [ -n "$kind" ] || continue
  [ -n "$req" ] && [ -z "$rest" ] || die "bad requirement line '$kind $req $rest' (expected: KIND REQUIREMENT)"
  if [ "$kind" = sdist ]; then SDISTS+=("$req"); else BINARIES+=("$req"); fi
done <<< "$(printf '%s\n' "$REQS" | awk '!seen[$0]++')"

if [ "$LIST" = 1 ]; then
  printf '%s\n' "$REQS" | awk '!seen[$0]++'
  exit 0
fi

CROSS=()
if [ -n "$PYVER" ] || [ -n "$PLATFORM" ]; then
  # pip can only pick wheels for another interpreter/platform: no source builds then
  CROSS=(--only-binary=:all:)
  [ -n "$PYVER" ] && CROSS+=(--python-version "$PYVER")
  [ -n "$PLATFORM" ] && CROSS+=(--platform "$PLATFORM")
fi

mkdir -p "$DEST"
PIP=("$PY" -m pip --disable-pip-version-check download -d "$DEST")
if [ ${#BINARIES[@]} -gt 0 ]; then
  printf '[download_wheels] %d requirements (+ dependencies) -> %s\n' "${#BINARIES[@]}" "$DEST" >&2
  "${PIP[@]}" ${CROSS[@]+"${CROSS[@]}"} "${BINARIES[@]}" || die "pip download failed (see above)"
fi
if [ ${#SDISTS[@]} -gt 0 ]; then
  printf '[download_wheels] source archives: %s\n' "${SDISTS[*]}" >&2
  # Preparing an sdist's metadata runs its setup.py in an isolated build env;
  # mmcv 2.1.0's imports pkg_resources, gone from setuptools >= 81.
  constraints="$(mktemp)"
  trap 'rm -f "$constraints"' EXIT
  echo 'setuptools<81' > "$constraints"
  PIP_CONSTRAINT="$constraints" "${PIP[@]}" --no-deps --no-binary :all: "${SDISTS[@]}" \
    || die "pip download of the source archives failed (see above)"
fi
count="$(find "$DEST" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) | wc -l)"
printf '[download_wheels] done: %s files in %s; on the target: MMDYN_WHEELS=%s%s bash tools/setup_env.sh\n' \
  "$count" "$DEST" "$DEST" "$([ "$TORCH" = system ] && echo ' MMDYN_TORCH=system')" >&2
