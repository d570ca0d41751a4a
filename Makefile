# Commands that set up .venv on first use (and the Debian packages they need, with apt-get):
#   make book      execute every chapter and build the HTML book into _build/html
#   make pdf       the whole book as one PDF, _build/pdf/book.pdf (LaTeX: see the README)
#   make student   the student edition (no solutions; the figures of make book's or make test's run) and its HTML,
#                  in _build/student; make answers EXERCISES=5.2,7.1 also releases the answers of those exercises
#   make test      unit tests, every notebook under nbval (instructor and student editions), then the book
#                  built from the outputs nbval computed (each chapter executes once) and opened page by page
#                  in headless Chromium (tools/check_pages.py)
#   make check     the fast tier for the inner loop: ruff, the import-layer contracts, the unit tests
#   make lab       the chapters in JupyterLab, from the student environment .venv-student (requirements-student.txt)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
LATEX_PACKAGES := latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
	texlive-fonts-extra texlive-xetex fonts-freefont-otf
# the book's own Sphinx extension (tools/sphinx_ext) named by absolute path in configs written elsewhere
ABS_EXT := s|tools/sphinx_ext|$(CURDIR)/tools/sphinx_ext|

.PHONY: book pdf student answers test check lint bench clean browser latex lab student-env-test

STUDENT_VENV := .venv-student
# a student's environment in folder $(1): the chapters' dependencies and JupyterLab, none of the developer's tools
define student_venv
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -m pip install --quiet -r requirements-student.txt
	$(1)/bin/python -m pip install --quiet --no-deps -e .
endef

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(STUDENT_VENV)/.installed: requirements-student.txt pyproject.toml
	$(call student_venv,$(STUDENT_VENV))
	touch $@

lab: $(STUDENT_VENV)/.installed
	$(STUDENT_VENV)/bin/jupyter lab book

# a fresh student environment each time: it must run the chapters on its own
student-env-test:
	$(call student_venv,_build/student-venv)
	_build/student-venv/bin/python tools/check_student_env.py

book: $(VENV)/.installed
	$(PY) -m gradeclip_lib model-check
	$(JB) build . -W -n --keep-going
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"

# Debian's Chromium for the page check (Playwright drives it; nothing downloads a browser)
browser:
	@command -v chromium >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq --no-install-recommends chromium; }

latex:
	@command -v latexmk >/dev/null 2>&1 && command -v xelatex >/dev/null 2>&1 || \
		{ $(APT) update -qq && $(APT) install -y -qq --no-install-recommends $(LATEX_PACKAGES); }

pdf: $(VENV)/.installed latex
	$(JB) build . --builder pdflatex -n --keep-going
	mkdir -p _build/pdf
	cp _build/latex/book.pdf _build/pdf/book.pdf
	@echo "The PDF: $(CURDIR)/_build/pdf/book.pdf"

# The student edition in folder $(1), with the figures of the executed chapters in $(2), the answers of
# exercises $(3) released (a comma-separated list, or nothing), and its HTML
define student_build
	$(PY) tools/student_edition.py $(1) --outputs $(2) $(if $(3),--release $(3))
	sed 's/^\(\s*execute_notebooks:\).*/\1 "off"/; $(ABS_EXT)' _config.yml > $(1)/_config.yml
	$(JB) build $(1) -W -n --keep-going
endef
# the executed chapters whose figures the student edition shows: those of make test, else of make book
OUTPUTS ?= $(firstword $(wildcard _build/check/book _build/jupyter_execute/book))

student: $(VENV)/.installed
	@test -n "$(OUTPUTS)" || { echo "The student edition shows what the chapters computed: run make book (or make test) first."; exit 1; }
	$(call student_build,_build/student,$(OUTPUTS),$(EXERCISES))
	@echo "The student edition: notebooks in _build/student/book, HTML in _build/student/_build/html"

# the student edition with the worked answers, solutions or discussions of just these exercises released
answers:
	@test -n "$(EXERCISES)" || { echo "Name the exercises: make answers EXERCISES=5.2,7.1"; exit 1; }
	$(MAKE) student EXERCISES=$(EXERCISES)
	@echo "Released: $(EXERCISES) (pages answer-*.ipynb in _build/student/book, listed in its HTML)"

# nbval runs every chapter (tools/nbval_outputs.py keeps what it computed in _build/check); the build renders
# those outputs instead of executing the chapters again (tools/executed_book.py refuses stale or missing ones).
# The student edition runs every cell too, and its long experiments (the pointing game, the deletion and
# insertion records) read what the instructor edition computed from the same code, weights and arguments
# (gradeclip_lib/memo.py, on only here: GRADECLIP_MEMO_DIR).
# the answers make test releases in the student edition it builds: one worked answer, one solution, one discussion
TEST_RELEASE := 2.1,5.2,7.3
test: lint browser student-env-test
	rm -rf _build/check _build/student_check _build/student_html _build/memo
	$(PY) tools/student_edition.py _build/student_check --expect-failures
	GRADECLIP_MEMO_DIR=$(CURDIR)/_build/memo $(PY) -m pytest -p tools.nbval_outputs --nbval-lax tests book _build/student_check/book \
		--executed-notebooks _build/check --durations=30
	$(PY) tools/executed_book.py _build/check
	$(JB) build _build/check -W -n --keep-going --all
	$(PY) tools/check_pages.py _build/check/_build/html
	$(call student_build,_build/student_html,_build/check/book,$(TEST_RELEASE))
	$(PY) tools/check_student_html.py _build/student_html --released $(TEST_RELEASE) --outputs _build/check/book

check: lint
	MPLBACKEND=agg $(PY) -m pytest tests -q

lint: $(VENV)/.installed
	$(PY) -m ruff check gradeclip_lib tests tools book
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	$(PY) -m gradeclip_lib bench

clean:
	rm -rf _build
