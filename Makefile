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
.PHONY: help venv demo test test-fast lint bench bench-memory lab release grade feedback export scores report cohort clean \
	delete-student-work gradescope

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "coursekit needs Python 3.11 or newer; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $@

venv: $(STAMP) ## create .venv with the pinned dependencies

demo: $(STAMP) ## the whole job on the shipped demo cohort, in its own scratch course demo-course/ (yours untouched)
	$(BIN)/coursekit demo $(if $(VERBOSE),--verbose)

test: $(STAMP) ## lint, then every test: unit and end to end (real nbgrader, kernels, browser)
	$(BIN)/ruff check .
	bash tests/install_debian_package.sh chromium postgresql
	$(PYTEST) tests -n $(or $(TEST_WORKERS),3) -m 'not serial' --durations=30
	$(PYTEST) tests -m serial --durations=5

test-fast: $(STAMP) ## the unit tests only (seconds)
	$(PYTEST) tests -m "not slow"

bench: $(STAMP) ## time coursekit grade against plain nbgrader autograde on the demo cohort; compare scores
	$(BIN)/python -m coursekit.engine.bench

bench-memory: $(STAMP) ## grade STUDENTS=1000 copies of the demo cohort; is memory flat? (plot in artifacts/)
	$(BIN)/python -m coursekit.engine.bench --memory-only --students $(or $(STUDENTS),1000)

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

lab: $(STAMP) ## JupyterLab on a working copy of the release in lab/, as a student sees it
	@test -d lab/custom_training_basics || (mkdir -p lab && cp -r release/custom_training_basics lab/)
	$(BIN)/jupyter lab --ServerApp.root_dir=lab custom_training_basics/custom_training_basics.ipynb

release: $(STAMP) ## generate release/ from source/ (commit the result)
	$(BIN)/coursekit release $(if $(VERBOSE),--verbose)

grade: $(STAMP) ## autograde submitted/ (FORCE=1 regrades, STUDENT=id grades one, SCHEDULER=tcp://host:8786 on Dask)
	$(BIN)/coursekit grade $(if $(FORCE),--force) $(if $(STUDENT),--student="$$STUDENT") $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(VERBOSE),--verbose)

feedback: $(STAMP) ## HTML feedback per student in feedback/ (STUDENT=id: that student's only)
	$(BIN)/coursekit feedback $(if $(STUDENT),--student="$$STUDENT") $(if $(VERBOSE),--verbose)

export: $(STAMP) ## grades.csv for the LMS
	$(BIN)/coursekit export $(if $(VERBOSE),--verbose)

scores: $(STAMP) ## points per student and group, from the gradebook
	$(BIN)/coursekit scores $(if $(VERBOSE),--verbose)

report: $(STAMP) ## reports/custom_training_basics.html (how the class did) and its data as CSV beside it
	$(BIN)/coursekit report $(if $(VERBOSE),--verbose)

gradescope: $(STAMP) ## gradescope/custom_training_basics_autograder.zip: these checks as a Gradescope autograder
	$(BIN)/python -m coursekit.gradescope.build

cohort: $(STAMP) ## rewrite demo/cohort/ from the release and coursekit/course/cohort.py
	$(BIN)/python -m coursekit.course.cohort

# Only what `make grade`, `make feedback`, `make export` and `make demo` rebuild. Never submitted/ or rejected/
# (the students' work) nor the gradebook (manual grades and comments are the graders' work). `find -exec rm`
# on each entry, not `rm -rf dir/*/`: a symlink is removed, never followed.
clean: ## remove what grading rebuilds (autograded/, feedback/, grades*.csv, feedback_packs/, reports/, demo-course/); keeps submissions and gradebook
	find autograded feedback -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf grades.csv grades_*.csv feedback_packs bench-out demo-course reports gradescope
	@# artifacts/: what tests and benches wrote; the samples kept in git (screenshots, exports) stay.
	git clean -fdXq artifacts 2>/dev/null || rm -rf artifacts

delete-student-work: ## DELETE every submission, rejected/, the gradebook and all grading output (asks first)
	@echo "This deletes the students' work and every grade: submitted/*/ and rejected/ (the students' files),"
	@echo "gradebook.db (with manual grades and comments), autograded/, feedback/ and grades.csv in $(CURDIR)."
	@$(if $(DB_URL),echo "The gradebook at DB_URL is a database server's: it is not touched; drop it there.";)
	@printf 'Type "delete student work" to go on: '; read answer; \
	 if [ "$$answer" != "delete student work" ]; then echo "Nothing deleted."; exit 1; fi
	find submitted autograded feedback -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf rejected gradebook.db grades.csv
	@echo "Deleted."
