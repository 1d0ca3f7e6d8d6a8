# Two commands set up a fresh machine: `make up` and `make test`.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
# Debian packages: bubblewrap sandboxes gate commands; chromium runs the browser tests;
# golang-go is the Go toolchain for Go projects (Node and Rust come with the machine).
SYSTEM_PACKAGES := bubblewrap chromium chromium-driver golang-go
SYSTEM_STAMP := $(VENV)/.system-packages

.PHONY: up test lint

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

$(SYSTEM_STAMP):
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "Missing system packages:$$missing. Install them with apt-get (needs root):"; \
	  echo "  without bubblewrap gate commands run unsandboxed; without chromium the browser tests fail;"; \
	  echo "  without golang-go Go projects cannot be built."; fi
	@mkdir -p $(VENV) && touch $@

up: $(STAMP) $(SYSTEM_STAMP)
	$(VENV)/bin/autopack up

test: $(STAMP) $(SYSTEM_STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
