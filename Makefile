# make test   - create .venv (CPU torch where there is no GPU), install, run the tests
# make demo   - run every stage on the bundled fixtures (RAW_ROOT=... OUT=... for another raw root)
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

.PHONY: setup test demo bench scale-demo clean

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
	PY=$(VPY) OUT=$(OUT) bash translate/demo.sh $(DEMO_SETS)
	PY=$(VPY) OUT=$(OUT) bash pretrain/demo.sh $(DEMO_SETS)
	PY=$(VPY) OUT=$(OUT) bash match/demo.sh $(DEMO_SETS)
	PY=$(VPY) OUT=$(OUT) bash tasks/demo.sh $(DEMO_SETS)
	PY=$(VPY) OUT=$(OUT) bash eval_data/demo.sh $(DEMO_SETS)
	PY=$(VPY) OUT=$(OUT) bash pretrain/demo_merge.sh $(DEMO_SETS)
	@echo "demo finished: outputs under $(OUT)/out"

scale-demo: setup
	PY=$(VPY) OUT=$(OUT) bash translate/scale_demo.sh $(DEMO_SETS)

bench: setup
	$(VPY) translate/bench.py

clean:
	rm -rf $(OUT)
