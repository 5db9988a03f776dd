# vqvideo: every stage is one target. Training targets take CONFIG= and ARGS= (LightningCLI overrides), e.g.
#   make train-vqvae ARGS="--trainer.max_steps=50"
#   make train-top CONFIG=experiments/kinetics600_256/top_prior.yaml ARGS="--trainer.devices=8"
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This machine has a CPU build of torch 2.13.0 on local disk; a looser spec would pull a multi-GB CUDA
# build. On a GPU box with torch already installed: make install TORCH_SPEC=
TORCH_SPEC ?= torch==2.13.0
CONFIG ?=
ARGS ?=
OUT ?= outputs/demo
# make demo DATA=sprites: the generated bouncing sprites (data/sprites) into outputs/sprites; DATA=DIR: any folder of
# videos into outputs/<DIR's name> (or OUT=...), with the demo's configs
DATA ?=
LOGDIR ?= outputs

.PHONY: install test test-all demo train-vqvae precompute train-top train-bottom predict eval \
        bench bench-data bench-cache bench-sample bench-train bench-channels-last bench-gpu-decode gpu-check tensorboard human-eval-demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install -q "$(TORCH_SPEC)")
	$(BIN)/python -m pip install -q -e ".[test]"
	@# decord 0.6.0 (an older install) and decord2 share the `decord` folder: remove it, then restore decord2's files
	if $(BIN)/python -m pip show -q decord 2>/dev/null; then $(BIN)/python -m pip uninstall -q -y decord && \
	  $(BIN)/python -m pip install -q --force-reinstall --no-deps "decord2>=3.4"; fi
	touch $@

test: install
	$(BIN)/python -m pytest -q $(ARGS)

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow" $(ARGS)

demo: install
	$(BIN)/vqvideo demo $(if $(filter file,$(origin OUT)),,--out $(OUT)) $(if $(DATA),--data $(DATA)) \
	  $(if $(FRESH),--fresh) $(ARGS)

train-vqvae: install
	$(BIN)/vqvideo fit --config $(or $(CONFIG),experiments/demo/vqvae.yaml) $(ARGS)

precompute: install
	$(BIN)/vqvideo precompute --config $(or $(CONFIG),experiments/demo/precompute.yaml) $(ARGS)

train-top: install
	$(BIN)/vqvideo fit --config $(or $(CONFIG),experiments/demo/top_prior.yaml) $(ARGS)

train-bottom: install
	$(BIN)/vqvideo fit --config $(or $(CONFIG),experiments/demo/bottom_prior.yaml) $(ARGS)

predict: install
	$(BIN)/vqvideo predict --vqvae $(OUT)/vqvae.ckpt --top $(OUT)/top_prior.ckpt \
	  --bottom $(OUT)/bottom_prior.ckpt --input $(or $(INPUT),embedded:val) --out $(OUT)/predictions $(ARGS)

# Scores the demo's checkpoints (CKPT_DIR=... for others) on held-out clips with the demo's eval settings, into
# $(OUT)/eval (after `make demo`: rebuilds its report). Later ARGS override: FVD needs I3D weights,
#   make eval ARGS="--i3d /path/to/i3d_pretrained_400.pt --overwrite"   (or EVAL_OUT=other/folder instead of --overwrite)
CKPT_DIR ?= $(OUT)
EVAL_OUT ?= $(OUT)/eval
eval: install
	$(BIN)/vqvideo eval --vqvae $(CKPT_DIR)/vqvae.ckpt --top $(CKPT_DIR)/top_prior.ckpt \
	  --bottom $(CKPT_DIR)/bottom_prior.ckpt --out $(EVAL_OUT) --num_samples 4 --batch_size 5 $(ARGS)

# Blinded side-by-side study of the demo's predictions vs the copy-last-frame baseline, on localhost.
HUMAN_EVAL_PORT ?= 8000
human-eval-demo: install
	@test -f $(OUT)/eval/report.json || { echo "make human-eval-demo: $(OUT)/eval/report.json not found; run \`make demo\` first (it writes the eval folder)" >&2; exit 2; }
	$(BIN)/vqvideo human-eval make-pairs --a $(OUT)/eval --b $(OUT)/eval --b_system copy_last \
	  --names vqvideo,copy-last-frame --out $(OUT)/human_eval/pairs
	$(BIN)/vqvideo human-eval serve --pairs $(OUT)/human_eval/pairs --db $(OUT)/human_eval/judgments.db \
	  --port $(HUMAN_EVAL_PORT)

bench: bench-data bench-cache bench-sample bench-train bench-channels-last

bench-data: install
	$(BIN)/python benchmarks/bench_data.py $(ARGS)

bench-cache: install
	$(BIN)/python benchmarks/bench_cache.py $(ARGS)

bench-sample: install
	$(BIN)/python benchmarks/bench_sample.py $(ARGS)

# The prepared GPU check (benchmarks/gpu_check.py; README "GPU"): DEVICE=cuda, or cpu for the tiny-shape smoke test.
DEVICE ?= cuda
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py --device $(DEVICE) $(ARGS)

# GPU vs CPU clip decoding through the DataModule (needs a CUDA GPU and `pip install '.[gpu]'`; docs/gpu-decoding.md)
bench-gpu-decode: install
	$(BIN)/python benchmarks/bench_gpu_decode.py $(ARGS)

bench-train: install
	$(BIN)/python benchmarks/bench_train.py $(ARGS)

bench-channels-last: install
	$(BIN)/python benchmarks/bench_channels_last.py $(ARGS)

tensorboard: install
	$(BIN)/tensorboard --logdir $(LOGDIR)

clean:
	rm -rf outputs lightning_logs .pytest_cache
