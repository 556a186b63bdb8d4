SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
STAMP = $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install sysdeps test demo bench lint clean distclean fuzz

# The virtualenv, created only when missing.
$(PY):
	$(PYTHON) -m venv $(VENV)

# (Re)install only when pyproject.toml changed since last time. The demo needs the package and its
# asr extra (the local server's transcripts); the tests add the test extra (pytest, the openai SDK,
# ruff). A test install serves the demo too.
RUN_STAMP = $(VENV)/.installed-run

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -e '.[asr]'
	touch $@

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -e '.[test,asr]'
	touch $@ $(RUN_STAMP)

install: $(STAMP)

# Debian packages for the device tier (PortAudio, headless PulseAudio, espeak-ng, sox, tmux).
sysdeps:
	bash scripts/sysdeps.sh

test: sysdeps install
	$(PY) -m pytest $(PYTEST_ARGS)

# No sysdeps: file-based talk against the in-process local server needs no PortAudio.
demo: $(RUN_STAMP)
	mkdir -p out
	$(VENV)/bin/voicechat talk --backend local --input-file voicechat/data/question.wav --output-file out/reply.wav --fast

bench: sysdeps install
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check voicechat tests bench

# Long fuzzing with fresh randomness: 200,000 session sequences (and 50,000 codec frames) unless
# VOICECHAT_FUZZ_EXAMPLES says otherwise. `make test` runs the same fuzzers on 10,000 fixed sequences.
fuzz: install
	VOICECHAT_FUZZ_EXAMPLES=$${VOICECHAT_FUZZ_EXAMPLES:-200000} VOICECHAT_FUZZ_RANDOM=1 \
		$(PY) -m pytest -q -s tests/unit/test_fuzz.py $(PYTEST_ARGS)

# Build and tool artefacts; keeps the virtualenv (and bench/results).
clean:
	rm -rf build dist out *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find voicechat tests bench scripts -depth -name __pycache__ -type d -exec rm -rf {} + 2>/dev/null || true

distclean: clean
	rm -rf $(VENV)
