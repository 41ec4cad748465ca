r"""Adafactor: a factored second moment, update clipping and relative step sizes.

Two entries, because the two maintained implementations differ in more than defaults.

``adafactor`` -- torch.optim.Adafactor. For a parameter with two or more dimensions the second
moment of the last two is factored into a row vector :math:`R` and a column vector :math:`C`
(leading dimensions are batched); vectors keep a full :math:`V`. With :math:`\hat\beta_{2,t} =
1 - t^{c}` (:math:`c` = ``beta2_decay``), lr :math:`\gamma`, clipping threshold :math:`d` and
decoupled decay :math:`\lambda`:

.. math::
    \rho_t &= \min(\gamma, 1/\sqrt t), \qquad
    \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\,\rho_t \\
    \theta &\leftarrow \theta_{t-1}(1 - \gamma\lambda) \\
    R_t &= \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{cols}}(g_t^2), \qquad
    C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{rows}}(g_t^2) \\
    \hat V_t &= R_t C_t / \max(\mathrm{mean}(R_t), \epsilon_1)
       \qquad (\text{vectors: } \hat V_t = \hat\beta_{2,t}\hat V_{t-1} + (1-\hat\beta_{2,t}) g_t^2) \\
    U_t &= g_t / \sqrt{\max(\hat V_t, \epsilon_1^2)}, \qquad
    \theta_t = \theta - \alpha_t\, U_t / \max(1, \mathrm{RMS}(U_t)/d)

:math:`\epsilon_1` defaults to the dtype's machine epsilon. torch departs from the paper in
three documented ways: ``lr`` caps the relative step :math:`\rho_t` (the paper's constant is
0.01, torch's default lr), :math:`\epsilon_1` guards the final estimate and the update instead of
being added to :math:`g^2` inside the factors, and weight decay is decoupled and scaled by lr.
There is no first moment.

``adafactor-hf`` -- transformers.optimization.Adafactor with the settings the Hugging Face
Trainer uses for ``optim="adafactor"``: ``scale_parameter=False, relative_step=False,
warmup_init=False``, lr given, ``beta1=None``. That is the paper's algorithm (Algorithms 4 and 5:
:math:`\epsilon_1` added to :math:`g^2` before the factored averages, update clipping at ``d`` =
``clip_threshold``) with an absolute step :math:`\alpha_t = \eta` in place of the relative,
parameter-scaled one, and weight decay :math:`\theta \leftarrow \theta(1 - \lambda\eta)`:

.. math::
    R_t &= \hat\beta_{2,t} R_{t-1}
        + (1-\hat\beta_{2,t})\,\mathrm{mean}_{\text{cols}}(g_t^2 + \epsilon_1), \quad
    C_t = \ldots, \quad \hat V_t = R_t C_t / \mathrm{mean}(R_t) \\
    \theta_t &= \theta_{t-1}(1 - \lambda\eta) - \eta\, U_t / \max(1, \mathrm{RMS}(U_t)/d),
      \qquad U_t = g_t/\sqrt{\hat V_t}

Paper: Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML
2018. Seed 003 is right on the factored averages and the relative step
:math:`\max(\epsilon_2, \mathrm{RMS}(\theta))\rho_t`, but: its memory example counts the
parameters themselves -- Adafactor's *state* for a :math:`d_1\times d_2` matrix is
:math:`d_1 + d_2` numbers against Adam's :math:`2 d_1 d_2`, not "30-50% less"; its T5-11B table
has no source; and its Hugging Face example (``relative_step=False, warmup_init=True``) is refused
by transformers ("`warmup_init=True` requires `relative_step=True`").

The tuple ``eps`` of both libraries is exposed as two hyperparameters, ``eps1`` and ``eps2``, so
that each is validated and tuned on its own. (adafactor-hf has no ``eps2``: it is used only by
``scale_parameter``, which the Trainer turns off.)

State per parameter, :math:`n` elements, last two dimensions :math:`(a, b)`:
torch -- a 0-d ``step`` tensor plus :math:`n/b + n/a` (``row_var``, ``col_var``) or, for
vectors, :math:`n` (``variance``) elements of the parameter's dtype; transformers -- ``step`` is an
int, a 0-d ``RMS`` tensor, plus the same factor sizes (``exp_avg_sq_row``/``_col``, or
``exp_avg_sq``), kept in float32 for float16/bfloat16 parameters.
"""
import torch

from optimizers import Moment, OptimizerSpec, above, at_least, at_most, itemsize, numel, register, scalar_bytes


def factored_elements(shape) -> int:
    """Elements of Adafactor's second-moment estimate: row + column factors, or a full vector."""
    n = numel(shape)
    if len(shape) >= 2:
        return (n // shape[-1] if shape[-1] else 0) + (n // shape[-2] if shape[-2] else 0)
    return n


def torch_adafactor_state_bytes(shape, dtype):
    return factored_elements(shape) * itemsize(dtype) + scalar_bytes()


def hf_adafactor_state_bytes(shape, dtype):
    # transformers computes in float32 for half-precision parameters and keeps its state there.
    state_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    return (factored_elements(shape) + 1) * itemsize(state_dtype)  # + the 0-d RMS tensor


def build_torch_adafactor(params, eps1=None, eps2=1e-3, **hp):
    return torch.optim.Adafactor(params, eps=(eps1, eps2), **hp)


def build_hf_adafactor(params, lr, eps1=1e-30, clip_threshold=1.0, decay_rate=-0.8, weight_decay=0.0):
    from transformers.optimization import Adafactor  # imported when used: transformers is slow to import
    return Adafactor(params, lr=lr, eps=(eps1, 1e-3), clip_threshold=clip_threshold, decay_rate=decay_rate,
                     beta1=None, weight_decay=weight_decay,
                     scale_parameter=False, relative_step=False, warmup_init=False)


# torch.optim.Adafactor's form (also the reference implementation's, optimizers/reference.py): eps1
# None is the dtype's machine epsilon; beta2_t = 1 - t**beta2_decay; d is the clipping threshold. Its
# second moment: a 1-D parameter's unfactored variance, or the factors row_var and col_var, whose
# reconstruction row_var col_var / mean(row_var) has mean mean(col_var); no first moment.
TORCH_ADAFACTOR_DEFAULTS = dict(lr=1e-2, beta2_decay=-0.8, eps1=None, eps2=1e-3, d=1.0, weight_decay=0.0)
TORCH_ADAFACTOR_RULES = dict(eps1=above(0, kind="real", none=True), beta2_decay=at_most(0), d=at_least(1))
TORCH_ADAFACTOR = dict(
    family="adafactor", paper="Shazeer & Stern 2018", lr_range=(1e-4, 1.0), hparam_rules=TORCH_ADAFACTOR_RULES,
    moments={"m": (), "v": (Moment("variance"), Moment("col_var", "factor", "row_var/col_var (factored: mean of col_var)"))},
    state_bytes=torch_adafactor_state_bytes)

register(OptimizerSpec(name="adafactor", implementation="torch.optim.Adafactor", build=build_torch_adafactor,
                       defaults=dict(TORCH_ADAFACTOR_DEFAULTS), **TORCH_ADAFACTOR))

register(OptimizerSpec(
    name="adafactor-hf", family="adafactor", paper="Shazeer & Stern 2018",
    implementation="transformers.optimization.Adafactor(scale_parameter=False, relative_step=False)",
    build=build_hf_adafactor,
    defaults=dict(lr=1e-3, eps1=1e-30, clip_threshold=1.0, decay_rate=-0.8, weight_decay=0.0),
    lr_range=(1e-5, 1e-1),
    hparam_rules=dict(clip_threshold=above(0), decay_rate=at_most(0)),   # beta2_t = 1 - t**decay_rate
    package="transformers",
    moments={"m": (), "v": (Moment("exp_avg_sq"),   # a 1-D parameter's, unfactored
                            Moment("exp_avg_sq_col", "factor", "exp_avg_sq_row/col (factored: mean of the column factor)"))},
    state_bytes=hf_adafactor_state_bytes,
))
