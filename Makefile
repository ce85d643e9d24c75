# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deepatlas-installed
TESTED := $(VENV)/.deepatlas-test-installed

.PHONY: run test data browser readme clean

# `make run` installs what deepatlas needs; `make test` adds the test tools (pytest, ONNX,
# PyG's reference layers), so that the first `make run` stays within its ten minutes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e .
	touch $(STAMP)

$(TESTED): $(STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $(TESTED)

data:
	@scripts/get-fashion-mnist.sh

browser:
	@scripts/get-chromium.sh

# The main job: every experiment of the map at quick size, then the report page.
run: $(STAMP) data
	$(BIN)/deepatlas tour --quick --out runs/tour

# The README's measured tables, from the committed results/ (make test checks they agree).
readme: $(STAMP)
	$(BIN)/python scripts/readme_results.py

# Two workers, each given a whole file at a time, the longest first (tests/conftest.py).
test: $(TESTED) browser
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

clean:
	rm -rf $(VENV) runs .pytest_cache
