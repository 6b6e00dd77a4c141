# The two commands that matter: `make train` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Pinned for this setup: these wheels lie on the build machine's disk, so install never downloads several GB.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# Extras `make install` puts in the venv (comma-separated, as pip spells them); `make test` runs their tests.
EXTRAS := dev,metrics,optuna,slurm,export

.PHONY: install train test test-slow benchmark quality clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS) -e '.[$(EXTRAS)]'
	touch $@

train: install
	$(VENV)/bin/gantrain $(ARGS)

test: install
	$(PY) -m pytest -q -n auto  # one worker per core (tests/conftest.py gives each one thread)

test-slow: install
	$(PY) -m pytest -q -m slow

benchmark: install
	$(PY) scripts/benchmark.py $(ARGS)

quality: install
	$(PY) scripts/quality_digits.py $(ARGS)

clean:
	rm -rf $(VENV) runs outputs .pytest_cache
