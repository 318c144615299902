# Two commands do all set-up on a fresh machine (see README.md):
#   make run   - set up, run the FONTS `quick` experiment (about 5 min on 2 cores) and write the four-claims report
#   make test  - set up, run the test suite
PY := .venv/bin/python
RESULTS ?= results

.PHONY: setup run test bench gpu-wheels clean

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) -m manifold_robustness data build --progress
	$(PY) -m manifold_robustness data samples --out $(RESULTS)/fonts_samples.png
	$(PY) experiments/fonts.py quick --results $(RESULTS)/fonts_quick

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

bench: setup
	$(PY) benchmarks/fonts_build.py

# the pure-Python packages the GPU benchmarks need beyond a JAX image (benchmarks/gpu.sh)
gpu-wheels: setup
	$(PY) -m pip download -q --no-deps -d .whl/gpu ml_collections tqdm

clean:
	rm -rf .stamps $(RESULTS)
