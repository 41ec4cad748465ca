r"""SparseAdam (torch.optim.SparseAdam): "lazy" Adam for embeddings with sparse gradients.

For the rows :math:`i` present in the sparse gradient of step :math:`t` (the rest are untouched,
moments included):

.. math::
    m_{t,i} &= \beta_1 m_{t-1,i} + (1-\beta_1) g_{t,i}, \qquad
    v_{t,i} = \beta_2 v_{t-1,i} + (1-\beta_2) g_{t,i}^2 \\
    \theta_{t,i} &= \theta_{t-1,i} - \eta\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
       \frac{m_{t,i}}{\sqrt{v_{t,i}} + \epsilon}

(:math:`t` counts the steps at which the table had a gradient, not the row's own updates.)
:math:`\epsilon` is added to the uncorrected :math:`\sqrt{v}` -- the "more efficient order" of
Kingma & Ba, section 2 -- so it acts as :math:`\epsilon/\sqrt{1-\beta_2^t}` in torch.optim.Adam's
form. This is Adam (Kingma & Ba 2015) restricted to the touched rows; the lazy variant is the one
TensorFlow Addons calls ``LazyAdam``. There is no weight decay.

Parameter policy. torch.optim.SparseAdam refuses dense gradients, and a model has dense
parameters too, so the entry takes the embedding tables -- parameters whose name contains
``embed``, ``wte`` or ``wpe`` -- and hands every other parameter to the registry's ``adam``
(torch.optim.Adam, the same update without laziness). Whether an embedding's gradient is sparse
is a property of the module (``nn.Embedding(sparse=True)``), not of the tensor the policy sees,
so this entry is for tasks that require sparse gradients: on a task with a dense embedding
SparseAdam raises at its first step ("SparseAdam does not support dense gradients"), and an
embedding named otherwise goes to Adam, which raises on a sparse gradient. On a model with no
embedding table the entry is torch.optim.Adam. (The registry's need "sparse" means *accepts*
sparse gradients, so ``workflows.engine.pairs.compatible`` cannot yet keep this entry off dense-embedding tasks.)

Seed 000 says Adam "handles sparse gradients" by its per-coordinate second moment; dense Adam
still decays every row's moments every step. The lazy update here is the sparse-gradient form.

State per parameter: ``exp_avg`` and ``exp_avg_sq`` (dense, the parameter's dtype and shape); its
``step`` is a Python int (no tensor bytes). The fallback's share is Adam's.
"""
import torch

from optimizers import OptimizerSpec, itemsize, numel, register

EMBEDDING_NAMES = ("embed", "wte", "wpe")


def is_embedding(name: str, p: torch.Tensor) -> bool:
    return p.ndim == 2 and any(key in name for key in EMBEDDING_NAMES)


def sparse_adam_state_bytes(shape, dtype):
    return 2 * numel(shape) * itemsize(dtype)


register(OptimizerSpec(
    name="sparse-adam", family="adam", paper="Kingma & Ba 2015 (lazy, sparse rows)",
    implementation="torch.optim.SparseAdam (embeddings) + torch.optim.Adam (rest)",
    build=torch.optim.SparseAdam,
    defaults=dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8),
    lr_range=(1e-5, 1.0),
    takes=is_embedding, fallback="adam",
    needs=frozenset({"sparse", "sparse_only"}),
    state_bytes=sparse_adam_state_bytes,
))
