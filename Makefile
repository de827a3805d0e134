# mmdyn: the two commands of the README, plus helpers.
#   make bench   set up .venv (first time: ~10 min, mmcv is compiled once per machine) and
#                run the layer benchmark (the main job for now)
#   make test    set up .venv and run the test suite (what CI runs)
PY := .venv/bin/python

.PHONY: setup test test-all bench
setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest tests

test-all: setup
	$(PY) -m pytest tests -m ""

bench: setup
	$(PY) tools/benchmark_layers.py
