# Two commands a learner needs:  `make lab`  and  `make test`.
# Both create a local virtual environment in .venv/ the first time (a few minutes:
# PyTorch is large) and reuse it afterwards.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install lab test unit notebooks lint sync browser-check browser-check-widgets7 clean rehearsal

install: $(STAMP)

# pip byte-compiles what it installs one file after the other (PyTorch alone is thousands of files);
# compileall does the same on every core: on 2 cores the install took 168 s instead of 208 s.
# (Its errors are ignored, as pip ignores them: a few packages ship test files for newer Pythons.)
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile -r requirements.txt -e ".[test]"
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
		>/dev/null 2>&1 || true
	touch $(STAMP)

# Jupyter refuses to run as root (common in containers) unless told it may. Kept apart from
# LAB_ARGS, so that `make lab LAB_ARGS="--port 8890"` as root still gets --allow-root.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: install  ## open the course in JupyterLab
	$(BIN)/jupyter lab notebooks $(ROOT_ARGS) $(LAB_ARGS)

# `make test` runs the unit tests beside the notebooks, each PyTorch on half the cores: on 2 cores
# that took 332 s, against 487 s for one after the other with every core each. The unit tests take
# less time than the lessons (270 s against 331 s), so the first lesson runs after them, on their
# side. The notebooks' report is shown as they run, the other side's after it.
HALF_CORES = $(shell $(BIN)/python -c "import os; print(max(1, (os.cpu_count() or 2) // 2))")
LESSONS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
FIRST_LESSON := $(firstword $(LESSONS))

test: install lint  ## everything CI runs: ruff, then `unit` beside `notebooks` (half the cores each)
	@log=$$(mktemp); echo "unit tests (tests/), then $(FIRST_LESSON): running beside the other lessons; their report follows"; \
	export OMP_NUM_THREADS=$(HALF_CORES); \
	{ $(MAKE) --no-print-directory unit; u=$$?; $(MAKE) --no-print-directory notebooks NOTEBOOKS=$(FIRST_LESSON); \
	  n=$$?; test $$u -eq 0 -a $$n -eq 0; } >"$$log" 2>&1 & side=$$!; \
	$(MAKE) --no-print-directory notebooks NOTEBOOKS="$(filter-out $(FIRST_LESSON),$(LESSONS))"; notebooks=$$?; \
	wait $$side; side=$$?; echo "--- unit tests (tests/), then $(FIRST_LESSON):"; cat "$$log"; rm -f "$$log"; \
	test $$notebooks -eq 0 -a $$side -eq 0

lint: install
	$(BIN)/ruff check .

unit: install  ## pytest for course_utils and the notebook checks (not the notebooks themselves)
	$(BIN)/python -m pytest tests

NOTEBOOKS ?= notebooks
notebooks: install  ## every notebook (or NOTEBOOKS=...) in quick mode under nbval, each exercise blank, then solved
	COURSE_QUICK=1 $(BIN)/python -m pytest $(NOTEBOOKS)

rehearsal: install  ## every lesson in FULL mode, offline, on a stand-in download, training capped (COURSE_TRAIN_CAP=1)
	COURSE_QUICK=0 COURSE_TRAIN_CAP=1 $(BIN)/python tests/rehearsal/run.py --cap 1

sync: install  ## maintainers: rerun notebooks in quick mode, rewrite badges/set-up cells, strip unchecked outputs
	COURSE_QUICK=1 $(BIN)/python colab/sync_notebooks.py --execute

browser-check: install  ## every lesson in JupyterLab 4 + ipywidgets 8 in headless Chromium (installs Chromium if missing)
	VENV=$(VENV) bash tests/browser/install.sh
	$(BIN)/python tests/browser/check_lab.py

browser-check-widgets7: install  ## the widget lessons again in JupyterLab 3 + ipywidgets 7, Colab's version (.venv-widgets7)
	VENV=$(VENV) bash tests/browser/install.sh --widgets7
	$(BIN)/python tests/browser/check_lab.py --widget-lessons --lab-python .venv-widgets7/bin/python \
		--expect-ipywidgets 7 --out .browser-check/widgets7

clean:
	rm -rf $(VENV) .venv-widgets7 *.egg-info .pytest_cache .browser-check
