# lnrnn — `make help` lists the targets. `make test` is exactly what CI runs.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help
help:  ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: install
install:  ## create .venv if missing; torch==2.13.0 (CPU wheel) first, then lnrnn[train,serve,cpu,dev] editable; chromium
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -e '.[train,serve,cpu,dev]'
	@# the page's browser test drives Debian's chromium (Playwright cannot download a browser here)
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	@$(MAKE) --no-print-directory web

# package-lock.json pins onnxruntime-web; npm ci's postinstall (serve/page/runtime.mjs) lays out the two files
# the page loads, precompressed, in node_modules/.lnrnn-web. Skipped while that is newer than both.
WEB_STAMP := node_modules/.lnrnn-web/runtime.json

.PHONY: web
web:  ## ONNX Runtime Web for the page's device mode (npm ci, when package-lock.json or runtime.mjs changed)
	@command -v npm >/dev/null || (echo "npm is missing: install node 20 and npm" >&2; exit 1)
	@if [ ! $(WEB_STAMP) -nt package-lock.json ] || [ ! $(WEB_STAMP) -nt serve/page/runtime.mjs ]; then \
		npm ci --no-audit --no-fund; fi

.PHONY: lint
lint: install typecheck  ## ruff check + ruff format --check + hadolint Dockerfile + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint --no-color --failure-threshold warning Dockerfile

# mypy cannot follow setuptools' editable finder (train/, export/, serve/ are lnrnn.train, ...), so it
# checks a tree of links laid out as the installed package; errors are reported with the repository paths.
.PHONY: typecheck
typecheck: install  ## mypy on lnrnn/, train/, export/ and serve/ (settings in pyproject.toml)
	@rm -rf .typecheck && mkdir -p .typecheck/lnrnn
	@for f in lnrnn/*; do ln -s "$(CURDIR)/$$f" .typecheck/lnrnn/; done
	@for d in train export serve; do ln -s "$(CURDIR)/$$d" .typecheck/lnrnn/$$d; done
	@set -o pipefail; cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml \
		--cache-dir ../.mypy_cache -p lnrnn | sed -E 's#^lnrnn/(train|export|serve)/#\1/#'

.PHONY: format
format: install  ## ruff --fix + ruff format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: test
test: install lint  ## install, lint, and run the whole test suite (what CI runs)
	$(BIN)/pytest

.PHONY: test-fast
test-fast:  ## the unit tier while you work: no slow tests, no shared data, no install or lint
	$(BIN)/pytest -q -m "not slow and not data"

.PHONY: bench
bench: install  ## full benchmark (~15 min, on a quiet machine): writes BENCHMARKS.md and bench/results.json
	$(BIN)/python -m bench.run --out bench/results.json --markdown BENCHMARKS.md

.PHONY: bench-quick
bench-quick: install  ## reduced benchmark (< 3 min): bench/results-quick.json (+ .md), not BENCHMARKS.md
	$(BIN)/python -m bench.run --quick --out bench/results-quick.json

SHARED_DATA ?= ../shared/data
EXPERIMENT_DATA ?= $(SHARED_DATA)/tinyshakespeare/input.txt

.PHONY: experiments
experiments: install  ## claims 1-4 over 3 seeds (~60 min, quiet machine): docs/experiments/{results.json,report.md,*.png}
	$(BIN)/lnrnn experiment seeds --out docs/experiments --data $(EXPERIMENT_DATA) --budget-minutes 60

SERVE_VENV ?= .venv-serve
MODEL ?= models/default

.PHONY: serve
serve:  ## serving-only venv (.venv-serve, no torch), then serve $(MODEL) on http://127.0.0.1:8000 (docs: /docs)
	@test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install -q --disable-pip-version-check -e '.[serve,cpu]'
	@$(MAKE) --no-print-directory web
	$(SERVE_VENV)/bin/lnrnn serve $(MODEL)

# the broad mix for a default model that knows more than English prose: pinned Debian packages are
# downloaded and extracted, never installed, and npm packages go to a folder of their own (docs/broad-mix.md)
BROAD_SRC ?= runs/broad-src
BROAD_DATA ?= runs/broad-data
DRIFT = $(if $(ALLOW_DRIFT),--allow-drift)

.PHONY: default-data
default-data: install  ## fetch the pinned Debian/npm packages and build the broad mix in runs/broad-data (ALLOW_DRIFT=1: other versions)
	@if [ "$$(id -u)" = 0 ]; then apt-get update -q; else echo "not root: apt-get download uses the current package lists"; fi
	@command -v npm >/dev/null || apt-get install -y -q npm
	$(BIN)/python -m lnrnn.train.recipes.broad_fetch --into $(BROAD_SRC) $(DRIFT)
	$(BIN)/python -m lnrnn.train.recipes.broad_mix --src $(BROAD_SRC) --data $(SHARED_DATA) --out $(BROAD_DATA) $(DRIFT)

# stage 2 of the default model: more weight on the splits furthest from the model card's bzip2 target
# (at least 25% fewer bits than bzip2 -9 on every validation split)
FINETUNE_REPEATS = tinyshakespeare=3,ptb-char-valid=2,wikitext2-test=4,lcet10=3

.PHONY: default-model
default-model: install  ## retrain + export models/default on the English corpus mix (~3 CPU-hours; needs $(SHARED_DATA))
	rm -rf runs/default-model runs/default-data runs/default-model-ft runs/default-data-ft
	$(BIN)/python -m lnrnn.train.recipes.default_mix --data $(SHARED_DATA) --out runs/default-data
	$(BIN)/lnrnn train --data runs/default-data --preset mix --bf16 --compile --quiet --out runs/default-model
	$(BIN)/python -m lnrnn.train.recipes.default_mix --data $(SHARED_DATA) --out runs/default-data-ft \
		--repeats $(FINETUNE_REPEATS)
	$(BIN)/lnrnn train --data runs/default-data-ft --preset mix-finetune --init-from runs/default-model \
		--bf16 --compile --quiet --out runs/default-model-ft
	$(BIN)/lnrnn export runs/default-model-ft --out models/default --quantize int8,int8w,int4 \
		--verify-data runs/default-data-ft/valid.txt
	$(BIN)/python -m lnrnn.train.recipes.model_card models/default
	$(BIN)/lnrnn plot runs/default-model --out models/default/curves.png
	$(BIN)/lnrnn plot runs/default-model-ft --out models/default/curves-finetune.png

# the broad model (docs/broad-mix.md): the default model fine-tuned on the broad mix, so that it knows code,
# markup and other languages, then on the same mix with its English reweighted as in the default's own second
# stage (the first stage lost 0.02-0.09 bits/byte on English), then with tinyshakespeare, the English split it
# still lost most on, six times, then with War and Peace (the one English split the third stage lost on) twice
# and the three other Canterbury books three times, then with the splits still lost on (tinyshakespeare,
# PTB-char, asyoulik) weighted up again and War and Peace three times; scored per kind beside gzip/xz/PPMd and
# today's default (bench/kinds.py)
BROAD_DATA_FT ?= runs/broad-data-ft
BROAD_DATA_EN ?= runs/broad-data-en
BROAD_DATA_BOOKS ?= runs/broad-data-books
BROAD_DATA_SPLITS ?= runs/broad-data-splits
ENGLISH_REPEATS = tinyshakespeare=6,ptb-char-valid=3,wikitext2-test=4,lcet10=3
BOOKS_REPEATS = $(ENGLISH_REPEATS),warandpeace=2,alice29=3,asyoulik=3,plrabn12=3
SPLITS_REPEATS = tinyshakespeare=8,ptb-char-valid=4,wikitext2-test=4,lcet10=3,warandpeace=3,alice29=3,asyoulik=6,plrabn12=3

.PHONY: broad-model
broad-model: install  ## fine-tune models/default on the broad mix into models/broad (~13.7 CPU-hours; needs default-data)
	test -f $(BROAD_DATA)/train.txt || { echo "no $(BROAD_DATA)/train.txt: run make default-data first"; exit 2; }
	rm -rf runs/broad-model runs/broad-model-ft runs/broad-model-en runs/broad-model-books runs/broad-model-splits
	$(BIN)/lnrnn train --data $(BROAD_DATA) --preset broad-finetune --init-from models/default --quiet \
		--out runs/broad-model
	$(BIN)/python -m lnrnn.train.recipes.broad_mix --src $(BROAD_SRC) --data $(SHARED_DATA) --out $(BROAD_DATA_FT) \
		--repeats $(FINETUNE_REPEATS) $(DRIFT)
	$(BIN)/lnrnn train --data $(BROAD_DATA_FT) --preset broad-reweight --init-from runs/broad-model --quiet \
		--out runs/broad-model-ft
	$(BIN)/python -m lnrnn.train.recipes.broad_mix --src $(BROAD_SRC) --data $(SHARED_DATA) --out $(BROAD_DATA_EN) \
		--repeats $(ENGLISH_REPEATS) $(DRIFT)
	$(BIN)/lnrnn train --data $(BROAD_DATA_EN) --preset broad-english --init-from runs/broad-model-ft --quiet \
		--out runs/broad-model-en
	$(BIN)/python -m lnrnn.train.recipes.broad_mix --src $(BROAD_SRC) --data $(SHARED_DATA) \
		--out $(BROAD_DATA_BOOKS) --repeats $(BOOKS_REPEATS) $(DRIFT)
	$(BIN)/lnrnn train --data $(BROAD_DATA_BOOKS) --preset broad-books --init-from runs/broad-model-en --quiet \
		--out runs/broad-model-books
	$(BIN)/python -m lnrnn.train.recipes.broad_mix --src $(BROAD_SRC) --data $(SHARED_DATA) \
		--out $(BROAD_DATA_SPLITS) --repeats $(SPLITS_REPEATS) $(DRIFT)
	$(BIN)/lnrnn train --data $(BROAD_DATA_SPLITS) --preset broad-splits --init-from runs/broad-model-books --quiet \
		--out runs/broad-model-splits
	$(BIN)/lnrnn export runs/broad-model-splits --out models/broad --quantize int8,int8w \
		--verify-data $(BROAD_DATA)/valid.txt
	$(BIN)/lnrnn quantize models/broad --bits 4 --block-size 16 --data $(BROAD_DATA)/valid.txt
	$(BIN)/lnrnn plot runs/broad-model --out models/broad/curves.png
	$(BIN)/lnrnn plot runs/broad-model-ft --out models/broad/curves-reweight.png
	$(BIN)/lnrnn plot runs/broad-model-en --out models/broad/curves-english.png
	$(BIN)/lnrnn plot runs/broad-model-books --out models/broad/curves-books.png
	$(BIN)/lnrnn plot runs/broad-model-splits --out models/broad/curves-splits.png
	$(BIN)/python -m bench.kinds --data $(BROAD_DATA) --model models/broad --model models/default \
		--out models/broad/kinds.json --card models/broad

# the size ladder (docs/ladder.md): the same recipe on the broad mix at two budgets of int8 files; int4 in blocks
# of 16 (small models lose 2x less than in the default model's 64), kept up to the delta each card states;
# each card's table comes from bench/ladder.py
define LADDER_MODEL
	test -f $(BROAD_DATA)/train.txt || { echo "no $(BROAD_DATA)/train.txt: run make default-data first"; exit 2; }
	rm -rf runs/ladder/$(1)
	OMP_NUM_THREADS=$(or $(THREADS),2) $(BIN)/lnrnn train --data $(BROAD_DATA) --preset ladder-$(1) --quiet \
		--out runs/ladder/$(1)
	$(BIN)/lnrnn export runs/ladder/$(1) --out models/ladder-$(1) --quantize int8,int8w \
		--verify-data $(BROAD_DATA)/valid.txt
	$(BIN)/lnrnn quantize models/ladder-$(1) --bits 4 --block-size 16 --max-delta $(2) \
		--data $(BROAD_DATA)/valid.txt
	$(BIN)/lnrnn plot runs/ladder/$(1) --out models/ladder-$(1)/curves.png
	$(BIN)/python -m bench.ladder --model ladder-$(1) --card > /dev/null
	$(BIN)/python -m lnrnn.codec.registry --write
endef

.PHONY: ladder-1m ladder-256k
ladder-1m: install  ## retrain + export models/ladder-1m: int8 files within 1 MiB (~1.3 CPU-hours; needs default-data)
	$(call LADDER_MODEL,1m,0.1)
ladder-256k: install  ## retrain + export models/ladder-256k: int8 files within 256 KiB (~0.7 CPU-hours)
	$(call LADDER_MODEL,256k,0.2)
