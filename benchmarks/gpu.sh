#!/usr/bin/env bash
# Every benchmark on one GPU, in one go (performance issue, item 5): throughput of each hot path,
# the CNN attack's fraction of the device's FP32 peak, the cost of one paper-preset FONTS group
# and the full grid extrapolated.  Budget: under 8 minutes on an H100/H200-class GPU.
#
#   bash benchmarks/gpu.sh            # on the GPU machine, from the repository root (device tool:
#                                     # run with carry [".whl/gpu"] after `make gpu-wheels` here)
#   bash benchmarks/gpu.sh --quick    # tiny sizes: checks that every step runs (any machine)
#
# The device's image has jax, flax, optax, orbax and chex; what else the benchmarks import
# (ml_collections, tqdm: pure Python) is installed from the wheelhouse .whl/gpu when one was
# carried along (`make gpu-wheels` builds it; it is git-ignored).  PyTorch is not expected there:
# the benchmarks print JAX figures only.
set -uo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

missing=$($PY - <<'EOF'
import importlib.util
mods = ["ml_collections", "yaml", "absl", "tqdm", "jax", "flax", "optax", "orbax", "chex"]
print(" ".join(m for m in mods if importlib.util.find_spec(m.split(".")[0]) is None))
EOF
)
if [ -n "$missing" ]; then
    if [ -d .whl/gpu ]; then
        echo "gpu.sh: installing from .whl/gpu: $missing"
        $PY -m pip install -q --no-index --find-links .whl/gpu ml_collections tqdm || true
    else
        echo "gpu.sh: missing modules ($missing) and no .whl/gpu wheelhouse (make gpu-wheels): some steps will fail"
    fi
fi

step() {  # step SECONDS TITLE CMD...: one benchmark under a time limit, its wall time printed
    local limit=$1 title=$2
    shift 2
    echo
    echo "=== $title"
    local t0=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    [ $rc -eq 124 ] && echo "(stopped after ${limit} s)"
    echo "--- $title: $((SECONDS - t0)) s (exit $rc)"
}

$PY - <<'EOF'
import jax
from manifold_robustness.models import conv
d = jax.devices()[0]
print(f"device: {d.device_kind} ({d.platform}), {jax.device_count()} device(s); jax {jax.__version__}")
print(f"convolutions: 'auto' resolves to {conv.resolve('auto').__name__} "
      f"(transposed: {conv.resolve_transpose('auto').__name__})")
EOF

# The fast CPU convolution paths must not leak into GPU programs: the compiled CNN attack should
# hold XLA convolutions, not the patches' slices + matmul.
step 120 "CPU paths in GPU programs" $PY - <<'EOF'
import jax, jax.numpy as jnp
from manifold_robustness import attacks, models
clf, v = models.create("cnn", (28, 28, 1), 10, jax.random.key(0))
atk = attacks.make("linf", iterations=2, restarts=1)
batch = {"image": jnp.zeros((100, 28, 28, 1)), "label": jnp.zeros((100,), jnp.int32)}
hlo = jax.jit(lambda v, b: atk(clf.logits_fn(v), b, jax.random.key(0)).success).lower(v, batch).as_text()
convs = hlo.count("convolution")
print(f"convolution ops in the lowered CNN attack: {convs}")
if jax.default_backend() == "gpu" and convs == 0:
    raise SystemExit("the GPU program holds no convolution: the CPU patch path leaked into it")
EOF

if [ $QUICK = 1 ]; then
    # (synthetic glyphs are not learnable: the early-exit part only shows it runs; its figure is a CPU one)
    step 300 "paper attack (CNN)" $PY benchmarks/attack_throughput.py --no-torch --fonts synthetic --early-exit-epochs 1 --images 200 --batches 100
    step 300 "on-manifold attacks" $PY benchmarks/manifold_attack_throughput.py --no-torch --fonts synthetic --images 10 --batches 10
    step 300 "adversarial-training step" $PY benchmarks/at_step_throughput.py --no-torch --fonts synthetic --steps 1
    step 300 "VAE-GAN training step" $PY benchmarks/vaegan_throughput.py --no-torch --classes 2 --channels 8 --steps 1 --repeats 1
    step 300 "paper grid cost" $PY benchmarks/paper_grid_cost.py --quick
else
    step 90 "paper attack (CNN), FLOP fraction" $PY benchmarks/attack_throughput.py --no-torch --early-exit-epochs 0 --images 20000 --batches 1000,5000,10000
    step 75 "on-manifold attacks" $PY benchmarks/manifold_attack_throughput.py --no-torch --fonts synthetic --images 5000 --batches 1000,5000
    step 60 "adversarial-training step" $PY benchmarks/at_step_throughput.py --no-torch --fonts synthetic --steps 50
    step 60 "VAE-GAN training step (10 class models)" $PY benchmarks/vaegan_throughput.py --no-torch --classes 10 --steps 10 --repeats 5
    step 150 "one paper group per method, the grid extrapolated" $PY benchmarks/paper_grid_cost.py
fi
