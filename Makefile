# make demo: set up, regenerate notebooks/, autograde the sample submissions, show grades
# make test: set up, lint, unit tests, notebooks under nbval and nbgrader, end-to-end grading;
#   two pytest workers, one for the modules that grade whole classes (conftest.py)
# make test-fast: the tests not marked slow (no notebook runs, no nbgrader), about a minute
.PHONY: setup data demo test test-fast lint release

setup:
	bash scripts/setup.sh

data: setup
	bash scripts/prepare-data.sh --download

demo: setup data
	.venv/bin/python -m autograder demo

release: setup
	.venv/bin/python -m autograder release

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

test: lint
	bash scripts/prepare-data.sh
	.venv/bin/python -m pytest tests solutions --nbval-lax -p no:cacheprovider --durations=25 \
	  -n 2 --dist loadscope --no-loadscope-reorder

test-fast: setup
	.venv/bin/python -m pytest tests -m "not slow" -p no:cacheprovider
