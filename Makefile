# Localcast: `make demo` and `make test` set up a fresh machine themselves.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the project runs for real: ffmpeg (media pipeline),
# nginx + wrk (benchmark reference and load generator), chromium (browser tests).
APT_PACKAGES := ffmpeg nginx-light wrk chromium bird2
STAMP := $(VENV)/.deps-stamp

.PHONY: deps demo test bench lint fmt clean

deps: $(STAMP)

$(STAMP): pyproject.toml Makefile package-lock.json
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	command -v npm >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm)
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

demo: deps
	$(BIN)/localcast demo

test: deps
	$(BIN)/pytest -q

lint: deps
	$(BIN)/ruff check localcast tests benchmarks
	$(BIN)/ruff format --check localcast tests benchmarks
	$(BIN)/mypy localcast

fmt: deps
	$(BIN)/ruff format localcast tests benchmarks
	$(BIN)/ruff check --fix localcast tests benchmarks

bench: deps
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
