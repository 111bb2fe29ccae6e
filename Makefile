# voicesub_stream: `make demo` and `make test` work from a fresh clone (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := espeak-ng libportaudio2 redis-server memcached chromium

.PHONY: demo test lint typecheck unit bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$*]"
	touch $@

## Set up with the bundled models and transcribe the example clip to SRT.
demo: $(VENV)/.installed-bundled
	$(BIN)/voicesub transcribe voicesub_stream/data/welcome.flac -o welcome.srt
	cat welcome.srt

## Install what the tests need, then lint, type-check and run every test.
test: system-deps $(VENV)/.installed-test lint typecheck unit

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

unit: $(VENV)/.installed-test
	$(BIN)/pytest

## The file benchmark: plain and batched faster-whisper vs ours, written to bench-file.json.
bench: $(VENV)/.installed-test
	$(BIN)/voicesub bench file --repeat 3 -o bench-file.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache welcome.srt
