# Set-up and everyday commands. `make test` and `make demo` set up first.
#   make setup                       CPU builds (or keep the builds already installed)
#   make setup MXNET=mxnet-cu112     a CUDA build of MXNet 1.9.1 (cu112 ... cu117)
#   make setup ONNXRUNTIME=onnxruntime-gpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MXNET ?=
ONNXRUNTIME ?=

.PHONY: setup packages ext test demo figures summary clean

setup: packages config.py ext

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

packages: $(PY)
	$(PY) tools/setup_env.py $(if $(MXNET),--mxnet $(MXNET)) $(if $(ONNXRUNTIME),--onnxruntime $(ONNXRUNTIME))

config.py:
	cp sample_config.py config.py

ext: packages
	cd cython_ext && ../$(PY) setup.py build_ext --inplace --quiet

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) -m tools.demo

figures: setup
	$(PY) -m tools.figures --out docs/figures

summary: setup
	$(PY) -m tools.summary

clean:
	rm -rf cython_ext/build cython_ext/*.c cython_ext/*.so
