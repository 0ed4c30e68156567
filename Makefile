# The course kit's commands. Each target sets up .venv (pinned by requirements.lock) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

# `make grade DB_URL=postgresql://...` (any target): the gradebook, instead of SQLite gradebook.db here.
ifdef DB_URL
export COURSEKIT_DB_URL := $(DB_URL)
endif

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-fast lint bench bench-memory lab release grade feedback export scores cohort clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "coursekit needs Python 3.11 or newer; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $@

venv: $(STAMP) ## create .venv with the pinned dependencies

demo: $(STAMP) ## the instructor's whole job on the shipped demo cohort: release, grade, feedback, export, scores
	$(BIN)/coursekit demo

test: $(STAMP) ## lint, then every test: unit and end to end (real nbgrader, kernels, browser)
	$(BIN)/ruff check .
	bash tests/install_debian_package.sh chromium postgresql
	$(PYTEST) tests

test-fast: $(STAMP) ## the unit tests only (seconds)
	$(PYTEST) tests -m "not slow"

bench: $(STAMP) ## time coursekit grade against plain nbgrader autograde on the demo cohort; compare scores
	$(BIN)/python -m coursekit.bench

bench-memory: $(STAMP) ## grade STUDENTS=1000 copies of the demo cohort; is memory flat? (plot in artifacts/)
	$(BIN)/python -m coursekit.bench --memory-only --students $(or $(STUDENTS),1000)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

lab: $(STAMP) ## JupyterLab on a working copy of the release in lab/, as a student sees it
	@test -d lab/custom_training_basics || (mkdir -p lab && cp -r release/custom_training_basics lab/)
	$(BIN)/jupyter lab --ServerApp.root_dir=lab custom_training_basics/custom_training_basics.ipynb

release: $(STAMP) ## generate release/ from source/ (commit the result)
	$(BIN)/coursekit release

grade: $(STAMP) ## autograde submitted/ (FORCE=1 regrades, STUDENT=id grades one, SCHEDULER=tcp://host:8786 on Dask)
	$(BIN)/coursekit grade $(if $(FORCE),--force) $(if $(STUDENT),--student="$$STUDENT") $(if $(SCHEDULER),--scheduler $(SCHEDULER))

feedback: $(STAMP) ## HTML feedback per student in feedback/
	$(BIN)/coursekit feedback

export: $(STAMP) ## grades.csv for the LMS
	$(BIN)/coursekit export

scores: $(STAMP) ## points per student and group, from the gradebook
	$(BIN)/coursekit scores

cohort: $(STAMP) ## rewrite demo/cohort/ from the release and coursekit/cohort.py
	$(BIN)/python -m coursekit.cohort

clean: ## remove generated grading output (keeps .venv)
	rm -rf autograded/*/ feedback submitted gradebook.db grades.csv artifacts
