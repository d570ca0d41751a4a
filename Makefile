# Two commands, both set up .venv on first use:
#   make book   execute every chapter and build the HTML book into _build/html
#   make test   unit tests, every notebook under nbval, and a build of the book without execution
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book

.PHONY: book test lint bench clean

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

test: $(VENV)/.installed
	$(PY) -m ruff check gradeclip_lib tests tools book
	MPLBACKEND=agg $(PY) -m pytest --nbval-lax tests book
	mkdir -p _build
	sed 's/^\(\s*execute_notebooks:\).*/\1 "off"/' _config.yml > _build/_config_noexec.yml
	$(JB) build . --config _build/_config_noexec.yml --path-output _build/check -W -n --keep-going --all

lint: $(VENV)/.installed
	$(PY) -m ruff check gradeclip_lib tests tools book

bench: $(VENV)/.installed
	$(PY) -m gradeclip_lib bench

clean:
	rm -rf _build
