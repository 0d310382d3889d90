# Two commands a learner needs:  `make lab`  and  `make test`.
# Both create a local virtual environment in .venv/ the first time (a few minutes:
# PyTorch is large) and reuse it afterwards.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install lab test unit notebooks lint sync browser-check clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt -e ".[test]"
	touch $(STAMP)

# Jupyter refuses to run as root (common in containers) unless told it may. Kept apart from
# LAB_ARGS, so that `make lab LAB_ARGS="--port 8890"` as root still gets --allow-root.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: install  ## open the course in JupyterLab
	$(BIN)/jupyter lab notebooks $(ROOT_ARGS) $(LAB_ARGS)

test: install lint unit notebooks  ## everything CI runs

lint: install
	$(BIN)/ruff check .

unit: install  ## pytest for course_utils and the notebook checks (not the notebooks themselves)
	$(BIN)/python -m pytest tests

notebooks: install  ## every notebook in quick mode under nbval; then a second "restart and run all" proving the exercises
	COURSE_QUICK=1 $(BIN)/python -m pytest notebooks
	COURSE_QUICK=1 $(BIN)/python -m pytest tests -m notebook_run

sync: install  ## maintainers: rerun notebooks in quick mode, rewrite badges/set-up cells, strip unchecked outputs
	COURSE_QUICK=1 $(BIN)/python colab/sync_notebooks.py --execute

browser-check: install  ## maintainers: run lessons in JupyterLab in headless Chromium (needs chromium + chromium-driver)
	$(BIN)/python -m pip install -q "selenium>=4.10"
	$(BIN)/python tests/browser/check_lab.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
