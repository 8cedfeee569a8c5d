# make test   - create .venv (CPU torch where there is no GPU), install, run the tests
# make demo   - run every stage on the bundled fixtures (RAW_ROOT=... OUT=... for another raw root)
# make status - every numbered step: done / stale / missing, and what to run next
# make bench  - translation engine speed against a plain generate loop
PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
RAW_ROOT ?= tests/fixtures/raw
OUT ?= demo_work
# The CPU build of torch used where no GPU is visible. This machine serves
# torch==2.13.0 (CPU) from disk; elsewhere use e.g.
#   make test TORCH_CPU="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_CPU ?= torch==2.13.0

DEMO_SETS := --set paths.raw_root=$(RAW_ROOT) --set paths.work_dir=$(OUT)/work --set paths.out_root=$(OUT)/out

.PHONY: setup test demo status bench scale-demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  $(VPY) -m pip install -q torch; else $(VPY) -m pip install -q $(TORCH_CPU); fi
	$(VPY) -m pip install -q -e '.[test,fast]'
	touch $@

test: setup
	$(VPY) -m pytest tests

demo: setup
	$(VPY) tests/tools/demo.py --out $(OUT) --raw $(RAW_ROOT)

# Every numbered step: done / stale / missing, and the next command.
# Point it at your run with e.g. make status STATUS_ARGS="--set paths.work_dir=/data/work"
status: setup
	$(VPY) -m common status $(STATUS_ARGS)

# The shardable steps through python -m common launch (local workers, and Ray when
# installed), checked byte for byte against a one-process run (in $(OUT)/one).
scale-demo: setup
	$(VPY) tests/tools/scale_demo.py --out $(OUT) --raw $(RAW_ROOT)

bench: setup
	$(VPY) tests/tools/bench_translate.py

clean:
	rm -rf $(OUT)
