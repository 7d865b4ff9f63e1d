# Set-up and everyday commands. `make test` and `make demo` set up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup ext test demo summary clean

setup: $(STAMP) config.py ext

$(STAMP): requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

config.py:
	cp sample_config.py config.py

ext: $(STAMP)
	cd cython_ext && ../$(PY) setup.py build_ext --inplace --quiet

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) -m tools.demo

summary: setup
	$(PY) -m tools.summary

clean:
	rm -rf cython_ext/build cython_ext/*.c cython_ext/*.so
