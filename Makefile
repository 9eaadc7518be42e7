# The README's two commands: `make run` (set up, then open catviz with the demo models)
# and `make test` (set up, then lint and run the tests). Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help run test lint bench gpu-check demo-models clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

help:
	@echo "make run          set up .venv, open catviz with the demo models and sample images"
	@echo "make test         set up .venv with the test tools, ruff + pytest (what CI runs)"
	@echo "make lint         ruff only"
	@echo "make bench        bench/models.py (other benchmarks: python bench/*.py --help)"
	@echo "make gpu-check    every CUDA path in one go (< 8 min on one GPU; a CPU dry run without)"
	@echo "make demo-models  pretrain the glyph trunk and train the demo pair into assets/ (10-25 min on 2 cores; OVERWRITE=1)"
	@echo "make clean        remove .venv and build files"

# The check prints the exact `apt-get install` line when Qt's xcb plugin lacks system libraries.
run: $(STAMP)
	$(BIN)/python -m catviz.system_libs
	$(BIN)/catviz

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/models.py

# Every CUDA path in one go (< 8 min on one GPU); without a GPU, a CPU dry run of the same steps.
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py

# Pretrains the glyph trunk and fine-tunes the demo pair into assets/ (see README, "The demo set and demo models").
# Refuses to replace the files already there unless OVERWRITE=1 (the shipped ones are in git).
demo-models: $(STAMP)
	$(BIN)/python -m catviz.train_cli.demo_models --out assets $(if $(OVERWRITE),--overwrite)

clean:
	rm -rf $(VENV) build *.egg-info
