# mmdyn: the two commands of the README, plus helpers.
#   make demo    set up .venv (first time: ~10 min, mmcv is compiled once per machine) and
#                run the embedded demo (Mask R-CNN + A2D2C+ on generated COCO data)
#   make test    set up .venv and run the test suite (what CI runs)
#   make bench   the layer benchmark (tools/analysis_tools/benchmark_layers.py)
#   make digits  static vs A2D2C+ on sklearn digits
#   make gpu-check  device self-check (docs/gpu.md); needs only torch: uses .venv if it
#                exists, else python3 (`python -m mmdyn.utils.gpu_check` from this folder:
#                mmdyn need not be installed); extra options in GPU_CHECK_ARGS="--device cuda:1 ..."
PY := .venv/bin/python

.PHONY: setup test test-all bench demo digits gpu-check
setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests

test-all: setup
	$(PY) -m pytest tests -m ""

bench: setup
	$(PY) tools/analysis_tools/benchmark_layers.py

demo: setup
	$(PY) tools/demo.py

digits: setup
	$(PY) tools/demo_digits.py

gpu-check:
	@if [ -x $(PY) ]; then $(PY) -m mmdyn.utils.gpu_check $(GPU_CHECK_ARGS); \
	else python3 -m mmdyn.utils.gpu_check $(GPU_CHECK_ARGS); fi
