# Two commands do all set-up on a fresh machine (see README.md):
#   make run   - set up, build FONTS and write a grid of sample letters
#   make test  - set up, run the test suite
PY := .venv/bin/python
RESULTS ?= results

.PHONY: setup run test bench clean

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) -m manifold_robustness data build --progress
	$(PY) -m manifold_robustness data samples --out $(RESULTS)/fonts_samples.png

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: setup
	$(PY) benchmarks/fonts_build.py

clean:
	rm -rf .stamps $(RESULTS)
