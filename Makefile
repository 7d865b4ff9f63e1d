# Set-up and everyday commands. `make test` and `make demo` set up first.
#   make setup                       CPU builds (or keep the builds already installed)
#   make setup MXNET=mxnet-cu117     a CUDA build of MXNet 1.9.1 (cu112 ... cu117) and its CUDA 11 libraries
#   make setup MXNET=system          the MXNet already installed (NGC container, source build)
#   make setup ONNXRUNTIME=onnxruntime-gpu
#   make setup PYTHON=python3.10     Python 3.10 or 3.11
#   make check-cuda                  the CUDA install checked with the real wheel (no GPU needed)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MXNET ?=
ONNXRUNTIME ?=

.PHONY: setup packages ext test test-long demo figures summary check-installs check-cuda clean

setup: packages config.py ext

$(PY):
	$(PYTHON) tools/install/setup_env.py --check-python
	$(PYTHON) -m venv $(if $(filter system,$(MXNET)),--system-site-packages) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

packages: $(PY)
	$(PY) tools/install/setup_env.py $(if $(MXNET),--mxnet $(MXNET)) $(if $(ONNXRUNTIME),--onnxruntime $(ONNXRUNTIME))

config.py:
	cp sample_config.py config.py

ext: packages
	cd cython_ext && $(abspath $(PY)) setup.py build_ext --inplace --quiet

# The suite in two parts, each on JOBS processes: `make test` (the quick part,
# under 10 minutes on 2 cores) and `make test-long` (the tests marked long:
# trainings, launched jobs, hosts, the README's walk-through).
JOBS ?= 2

test: setup
	$(PY) -m pytest -n $(JOBS) --dist loadfile -m "not long"

test-long: setup
	$(PY) -m pytest -n $(JOBS) --dist loadfile -m long

demo: setup
	$(PY) -m tools.demo

figures: setup
	$(PY) -m tools.figures --measure --out docs/figures --readme README.md

check-installs: $(PY)
	$(PY) tools/install/setup_env.py --resolve 3.10
	$(PY) tools/install/setup_env.py --resolve 3.11

check-cuda:
	$(PYTHON) tools/install/check_cuda.py $(if $(MXNET),--mxnet $(MXNET))

summary: setup
	$(PY) -m tools.summary

clean:
	rm -rf cython_ext/build cython_ext/*.c cython_ext/*.so
