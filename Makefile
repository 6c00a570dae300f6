# The README's two commands: `make run` and `make test`. Both build the
# environment first (system packages, venv, Python packages) so that a fresh
# clone needs nothing else.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONFIG ?= configs/quickstart.yaml
PYTEST_ARGS ?=

.PHONY: setup system-deps run test clean

system-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (Debian package)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server; }

# torch is pinned to the CPU build first so that no later resolver pulls a CUDA one
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: system-deps $(STAMP)

run: setup
	$(VENV)/bin/redux run $(CONFIG)

test: setup
	$(PY) -m ruff check redux tests
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
