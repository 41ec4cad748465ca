r"""PSGD-Kron (pytorch_optimizer.Kron): SGD with momentum, preconditioned by a Kronecker product of
triangular factors fitted online to the gradient noise.

For a matrix parameter, :math:`P = (Q_1^\top Q_1)\otimes(Q_2^\top Q_2)` with upper-triangular
:math:`Q_i` (higher-order tensors: one factor per dimension; 1-D tensors, dimensions of size 1 or
above ``max_size_triangular``: a diagonal factor):

.. math::
    m_t &= \mu m_{t-1} + (1-\mu) g_t, \qquad \hat m_t = m_t/(1-\mu^t) \\
    A &= Q_1 \hat m_t Q_2^\top, \qquad B = Q_1^{-\top} V Q_2^{-1}, \quad V \sim \mathcal N(0, I) \\
    Q_1 &\leftarrow Q_1 - \frac{\eta_p}{\lVert AA^\top + BB^\top\rVert}\,
        \mathrm{triu}(AA^\top - BB^\top)\,Q_1 \quad(\text{likewise } Q_2) \\
    u_t &= Q_1^\top Q_1\,\hat m_t\,Q_2^\top Q_2, \qquad
    u_t \leftarrow u_t \min\big(1,\ 1.1/(\mathrm{RMS}(u_t) + 10^{-6})\big) \\
    \theta_t &= \theta_{t-1} - \eta\,(u_t + \lambda\theta_{t-1}) \quad(\lambda \text{ on tensors of 2+ dims only})

with :math:`\eta_p` = 0.1, the norm a cheap lower bound of the spectral norm (Li's
``norm_lower_bound``), diagonal factors updated the same way with elementwise products and the
max-norm. The factors are refitted at every step for the first 500 steps, then with a
probability that decays to 0.03 (every :math:`\lceil 1/p\rceil`-th step, deterministically), and
about every 100th refit they are rebalanced to equal norms.

Paper: X.-L. Li, "Preconditioned Stochastic Gradient Descent", IEEE TNNLS 2018, and "Preconditioner
on Matrix Lie Group for SGD", ICLR 2019 (the Kronecker-product preconditioner, fitted on the Lie
group of triangular matrices); the Kron variant as used in practice is Li's psgd_torch ``Kron`` in
the form of E. Walters' kron_torch. Implementation: pytorch_optimizer.Kron, a port of kron_torch.
Why this one and not HeavyBall's PSGDKron: the same reasons as for SOAP (``soap.py``) -- HeavyBall is
compile-first, stores its factors in its own layouts (triangles as lines, float32 storage) and has
many more switches; the port here keeps plain tensors whose bytes are counted exactly below.
Differences from kron_torch: no merging of a >2-D tensor into a matrix (a conv filter gets one
factor per dimension), a default lr of 1e-3 (kron_torch: 3e-4), momentum 0.9 in both.

Two changes in this entry's subclass, neither touching the update's equations:

- Randomness. The library draws the probe :math:`V` from torch's global generator and the
  rebalancing decision from numpy's, so a run's trajectory depended on whatever else drew from
  those generators and a resumed run (``load_state_dict``) did not repeat the uninterrupted one
  unless the caller restored both generators at exactly that point. Here each step draws from its
  own stream, seeded with (``seed``, step) on the parameters' device, and the global generators are
  left as they were: the optimizer's randomness is a function of its state, and a resume is exact.
  (numpy's generator still advances by one draw per step inside the library; the decision is taken
  from the seeded stream.) ``seed`` should come from the run's seed; the harness has no field to pass
  it yet, so it defaults to 0.
- ``load_state_dict``. torch casts every floating state tensor to its parameter's dtype on loading,
  so a bfloat16 model's float32 factors came back as bfloat16 after a resume; the subclass casts
  them back to the factors' dtype.

How it was checked: ``tests/test_update_rules.py`` computes the first two steps for a 3-vector
(diagonal factor) and a 2x3 matrix (two triangular factors) by hand in float64 from the equations
above (with Li's spectral-norm lower bound re-implemented) and the probe vectors the entry draws, and
compares with this entry's optimizer run with float64 factors (``precondition_dtype`` float64 in the
test only): to 1e-12 relative, except the matrix's second step, 1e-5, because the library solves
the triangular systems for :math:`B` in float32 whatever the factors' dtype.

Defaults (the library's): lr 1e-3, momentum 0.9, weight_decay 0, seed 0; fixed: refit schedule
above, max_size_triangular 8192, min_ndim_triangular 2, no memory-saving mode, momentum (not the raw
gradient) into the fit, factors in float32 (``precondition_dtype``), momentum in the parameter's dtype.

Speed: the preconditioning is one einsum over the factors and the momentum; torch.einsum orders
such contractions only when opt_einsum is installed (a dependency of the project for this reason).
Without it the contraction runs left to right through an intermediate of :math:`\prod_i d_i^2`
elements: 0.4 s instead of 1.4 ms a step for one 64x64 matrix (measured on this project's CPU), and
out of memory for a 1024x1024 one.

State per parameter with dimensions :math:`d_1..d_k` and :math:`n` elements: ``momentum_buffer``
(:math:`n`, the parameter's dtype) and the factors ``Q`` in float32 -- for a tensor of 2+ dimensions
a :math:`d_i\times d_i` triangle (stored full) for each :math:`1 < d_i \le 8192` and a
:math:`d_i`-vector otherwise; for a 1-D tensor one :math:`n`-vector. The einsum expressions are
strings (no tensor bytes); the step and refit counters live in the param group.
"""
from __future__ import annotations

import torch

from optimizers import Moment, OptimizerSpec, at_least, itemsize, numel, register

MAX_SIZE_TRIANGULAR = 8192   # the library's default; fixed (changes the state)
MIN_NDIM_TRIANGULAR = 2
FACTOR_DTYPE = torch.float32


def kron_state_bytes(shape, dtype):
    if len(shape) == 0:
        factors = 1
    elif len(shape) < MIN_NDIM_TRIANGULAR:
        factors = sum(shape)
    else:
        factors = sum(d * d if 1 < d <= MAX_SIZE_TRIANGULAR else d for d in shape)
    return numel(shape) * itemsize(dtype) + factors * itemsize(FACTOR_DTYPE)


def kron_step_flops(shape, hp):
    """Per step, for each triangular factor (a dimension 1 < d <= MAX_SIZE_TRIANGULAR of an n-element
    tensor of 2+ dimensions) in float32: the preconditioned step Q₁ᵀQ₁·m·Q₂ᵀQ₂ (4·d·n), and the refit:
    A = Q·m (2·d·n), B by a triangular solve (d·n), A Aᵀ and B Bᵀ (4·d·n) and the factor's update
    (2·d³). Counted as if refitted every step: it is for the first 500 steps, then on 3 % of them (an
    upper bound). Diagonal factors are elementwise."""
    if len(shape) < MIN_NDIM_TRIANGULAR:
        return {}
    n = numel(shape)
    return {"matmul": sum(11 * d * n + 2 * d ** 3 for d in shape if 1 < d <= MAX_SIZE_TRIANGULAR)}


def _kron_class():
    from pytorch_optimizer import Kron

    class SeededKron(Kron):
        """pytorch_optimizer.Kron with its own random stream and a load_state_dict that keeps the
        factors' dtype (see the module docstring)."""

        def __init__(self, params, seed: int = 0, **kwargs):
            super().__init__(params, **kwargs)
            self.seed = int(seed)
            self._balance_prob = self.balance_prob

        def _generators(self) -> tuple[str, list[int], list[torch.Generator]]:
            """The accelerator type of the parameters ("cuda" where there is none, fork_rng's
            default), the indices of its devices they live on, and the generators to seed: the CPU's,
            then each of those devices'. The accelerator's module comes from the parameters' device
            type (`torch.get_device_module`), so this leaf, which may not import the engine's device
            module, names no accelerator and works on any."""
            devices = {p.device for g in self.param_groups for p in g["params"] if p.device.type != "cpu"}
            types = sorted({d.type for d in devices})
            if len(types) > 1:
                raise ValueError(f"kron: parameters on {', '.join(types)}; valid: one accelerator type")
            if not types:
                return "cuda", [], [torch.default_generator]
            module = torch.get_device_module(types[0])
            indices = sorted({d.index if d.index is not None else module.current_device() for d in devices})
            return types[0], indices, [torch.default_generator] + [module.default_generators[i] for i in indices]

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:   # outside the seeded stream: the model's own randomness is untouched
                with torch.enable_grad():
                    loss = closure()
            step = self.param_groups[0].get("step", 0)
            device_type, devices, gens = self._generators()
            with torch.random.fork_rng(devices=devices, device_type=device_type):
                for i, gen in enumerate(gens):
                    gen.manual_seed((self.seed * 1_000_003 + step) * 4 + i)
                balance = torch.rand((), generator=gens[0]).item() < self._balance_prob
                # the library compares a numpy draw in [0, 1) with balance_prob: 1 or 0 decides it
                self.balance_prob = 1.0 if balance else 0.0
                try:
                    super().step(None)
                finally:
                    self.balance_prob = self._balance_prob
            return loss

        def load_state_dict(self, state_dict):
            super().load_state_dict(state_dict)
            for group in self.param_groups:
                for p in group["params"]:
                    state = self.state.get(p)
                    if state and "Q" in state:
                        dtype = group["precondition_dtype"] or p.dtype
                        state["Q"] = [q.to(dtype) for q in state["Q"]]

    return SeededKron


def build_kron(params, **hp):
    return _kron_class()(params, max_size_triangular=MAX_SIZE_TRIANGULAR,
                         min_ndim_triangular=MIN_NDIM_TRIANGULAR, memory_save_mode=None,
                         precondition_dtype=FACTOR_DTYPE, **hp)


register(OptimizerSpec(
    name="kron", family="psgd", paper="Li 2018; Li 2019 (Kron)",
    moments={"m": (Moment("momentum_buffer"),),
             "v": "Kron's preconditioner factors Q whiten the gradient; they are not an average of its square"},
    implementation="pytorch_optimizer.Kron (own seeded stream)", build=build_kron,
    defaults=dict(lr=1e-3, momentum=0.9, weight_decay=0.0, seed=0),
    lr_range=(1e-5, 1.0),
    hparam_rules=dict(seed=at_least(0)),
    package="pytorch_optimizer",
    state_bytes=kron_state_bytes, step_flops=kron_step_flops,
))
