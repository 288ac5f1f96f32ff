# Two commands on a fresh machine: `make run` and `make test`.
# `make test` includes the installer build (PyInstaller, about a minute); KERNELSCOPE_RUN_SLOW=0 make test skips it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# onnxruntime-gpu when an NVIDIA driver answers, onnxruntime otherwise (never both).
ORT_EXTRA := $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
ORT_OTHER := $(if $(filter gpu,$(ORT_EXTRA)),onnxruntime,onnxruntime-gpu)

.PHONY: run test lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.run-stamp: pyproject.toml | $(VENV)/bin/python
	-$(PIP) uninstall -y $(ORT_OTHER) 2>/dev/null
	$(PIP) install -e '.[$(ORT_EXTRA)]'
	touch $@

$(VENV)/.test-stamp: pyproject.toml Makefile | $(VENV)/bin/python
	-$(PIP) uninstall -y onnxruntime-gpu 2>/dev/null
	$(PIP) install -e '.[cpu,train,dev,build]'
	touch $@ $(VENV)/.run-stamp

run: $(VENV)/.run-stamp
	$(VENV)/bin/kernelscope resources/sample_lr.png

test: $(VENV)/.test-stamp
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen KERNELSCOPE_RUN_SLOW=$${KERNELSCOPE_RUN_SLOW-1} $(PY) -m pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
