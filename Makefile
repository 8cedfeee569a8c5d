# make test   - create .venv (CPU torch where there is no GPU), install, run the tests
# make demo   - run every stage on the bundled fixtures (RAW_ROOT=... OUT=... for another raw root)
# make status - every numbered step: done / stale / missing, and what to run next
# make bench  - translation engine speed against a plain generate loop
# make mutation - mutation testing per module (score per module, >= 80%; writes the table in docs/testing.md)
# make bench-filter / bench-download / bench-memory - CapFilt filter vs one-process spaCy,
#   downloader vs img2dataset (in its own venv), peak memory of every step at 1x and 10x
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

.PHONY: setup test demo status bench bench-filter bench-download bench-memory scale-demo mutation clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  $(VPY) -m pip install -q torch; else $(VPY) -m pip install -q $(TORCH_CPU); fi
	$(VPY) -m pip install -q -e '.[test,fast]'
	touch $@

# The tests run in parallel (pytest-xdist), one worker per core; a test file's tests stay
# on one worker (its module fixtures are built once), the files are handed out in the order
# tests/conftest.py gives them (the longest first: --no-loadscope-reorder keeps it), and the
# demo run the suite shares is built once for all workers (tests/conftest.py demo_out).
# One process: make test PYTEST_JOBS=0
PYTEST_JOBS ?= auto
test: setup
	$(VPY) -m pytest -n $(PYTEST_JOBS) --dist loadfile --no-loadscope-reorder tests

demo: setup
	$(VPY) tests/tools/demo.py --out $(OUT) --raw $(RAW_ROOT)

# Every numbered step: done / stale / missing, and the next command.
# Point it at your run with e.g. make status STATUS_ARGS="--set paths.work_dir=/data/work"
# After make demo OUT=DIR, make status OUT=DIR reads the demo's settings from DIR/status.args.
status: setup
	$(VPY) -m common status $(if $(wildcard $(OUT)/status.args),--args-file $(OUT)/status.args) $(STATUS_ARGS)

# The shardable steps through python -m common launch (local workers, and Ray when
# installed), checked byte for byte against a one-process run (in $(OUT)/one).
scale-demo: setup
	$(VPY) tests/tools/scale_demo.py --out $(OUT) --raw $(RAW_ROOT)

bench: setup
	$(VPY) tests/tools/bench_translate.py

# Mutation testing of the core modules, each against its own test files (mutmut;
# docs/testing.md "Mutation testing"); fails when a module's score is under 80%.
# One module: make mutation MUTATION_ARGS=common/languages.py
mutation: setup
	$(VPY) tests/tools/mutation.py $(MUTATION_ARGS)

# The CapFilt filter against plain one-process spaCy on 20,000 real-style captions.
bench-filter: setup
	$(VPY) tests/tools/bench_filter.py $(BENCH_ARGS)

# img2dataset lives in a venv of its own: installing it into $(VENV) downgrades pandas.
I2D_VENV ?= .venv-img2dataset
$(I2D_VENV)/.installed:
	test -x $(I2D_VENV)/bin/python || $(PY) -m venv $(I2D_VENV)
	$(I2D_VENV)/bin/pip install -q img2dataset
	touch $@

bench-download: setup $(I2D_VENV)/.installed
	$(VPY) tests/tools/bench_download.py --img2dataset-python $(I2D_VENV)/bin/python $(BENCH_ARGS)

bench-memory: setup
	$(VPY) tests/tools/bench_memory.py $(BENCH_ARGS)

clean:
	rm -rf $(OUT)
