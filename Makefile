# Commands that set up .venv on first use:
#   make book      execute every chapter and build the HTML book into _build/html
#   make student   the student edition (no solutions, no outputs) and its HTML, in _build/student
#   make test      unit tests, every notebook under nbval (instructor and student editions), and a build
#                  of the book without execution
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book

.PHONY: book student test lint bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

book: $(VENV)/.installed
	$(PY) -m gradeclip_lib model-check
	$(JB) build . -W -n --keep-going
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"

student: $(VENV)/.installed
	$(PY) tools/student_edition.py _build/student
	mkdir -p _build
	sed 's/^\(\s*execute_notebooks:\).*/\1 "off"/' _config.yml > _build/student/_config.yml
	$(JB) build _build/student -W -n --keep-going
	@echo "The student edition: notebooks in _build/student/book, HTML in _build/student/_build/html"

test: $(VENV)/.installed
	$(PY) -m ruff check gradeclip_lib tests tools book
	$(PY) tools/student_edition.py _build/student_check --expect-failures
	MPLBACKEND=agg $(PY) -m pytest --nbval-lax tests book _build/student_check/book
	mkdir -p _build
	sed 's/^\(\s*execute_notebooks:\).*/\1 "off"/' _config.yml > _build/_config_noexec.yml
	$(JB) build . --config _build/_config_noexec.yml --path-output _build/check -W -n --keep-going --all

lint: $(VENV)/.installed
	$(PY) -m ruff check gradeclip_lib tests tools book

bench: $(VENV)/.installed
	$(PY) -m gradeclip_lib bench

clean:
	rm -rf _build
