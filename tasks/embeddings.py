r"""Sparse embeddings: a Zipf-distributed vocabulary where rare ids learn only from their few occurrences.

**Data.** Ids :math:`i \in \{0, \dots, V-1\}` are drawn i.i.d. with
:math:`p_i \propto (i + 1)^{-s}`, :math:`s = 1.1` (the id is its frequency rank). Each id has a
fixed teacher distribution over :math:`C` classes,

.. math::  q_i = \mathrm{softmax}(\beta\, t_i^\top W), \qquad t_i \sim \mathcal N(0, I_k),\
           W \sim \mathcal N(0, I/k),\ \beta = 3,

and each occurrence's label is sampled from :math:`q_i` (label noise: the Bayes loss
:math:`\sum_i p_i H(q_i)` is about 1.15 nats against :math:`\log C`). The teacher is fixed by the
task; the seed draws the samples and the student's initialisation.

**Model.** ``embed = nn.Embedding(V, d)`` (torch's default :math:`\mathcal N(0, 1)` init) and a
linear ``head`` :math:`d \to C`, trained on the cross-entropy of the sampled labels. The student
can represent the teacher exactly (:math:`d \ge k`), so what limits it is data: the top ids are
seen hundreds of times, the tail ids at most once or twice, and never-seen ids keep their random
initial rows.

**Evaluation** is exact, not sampled: for every id the cross-entropy against the teacher,
:math:`\ell_i = -\sum_c q_{ic}\log p_\theta(c\mid i)`, and the accuracy against the teacher's most
likely class; ``val_loss`` :math:`= \sum_i p_i \ell_i` is the population loss. The same is
reported per frequency bucket (weights :math:`p_i` renormalised inside the bucket): ``head`` =
top 1 % of ids, ``torso`` = next 19 %, ``tail`` = the remaining 80 % (``loss_head``,
``loss_torso``, ``loss_tail``, ``acc_*``). ``extras`` has the Bayes loss overall and per bucket and
each bucket's share of the probability mass and its expected number of training occurrences.

**Validation and test.** The validation metric (the curves, tuning, time to target) is the exact
population loss above: no sample of it exists to over-fit. The test split (``Problem.test``, once
at the end of a final run) is what a held-out set is: ``N_TEST`` = :math:`2^{18}` fresh examples
(id and label drawn as the training data are) from the seed's stream ``embeddings:test``, which no
training batch draws from; ``val_loss`` there is their mean cross-entropy, with ``se`` the
standard error of that mean from the per-example cross-entropies (their deviation is about 1.3
nats, so :math:`se \approx 1.3 / 2^9 \approx 0.0026` nats: 0.0025-0.0027 in cpu-size runs of Adam
and AdamW, whose means differ by 0.06; four times the examples would halve it for four times the
half second it takes on a CPU core), and ``loss_head`` / ``loss_torso`` /
``loss_tail`` the same mean over the test examples in each bucket. Its expectation is the
population loss, so test and validation differ by the sample's noise alone.

**Two tasks.** ``embeddings-zipf`` uses dense gradients (every optimizer runs it; the whole
:math:`V \times d` table gets a gradient, mostly zeros, and a stateful optimizer decays its moments
on every row every step). ``embeddings-zipf-sparse`` is the same problem, data and initial weights
with ``nn.Embedding(sparse=True)``: the table's gradient is a sparse COO tensor, while ``head``'s
gradients are dense. It ``requires={"sparse"}``: only optimizers that accept sparse gradients run
it. Of torch's optimizers, SGD (without momentum or weight decay) and Adagrad accept sparse and
dense gradients; ``torch.optim.SparseAdam`` accepts *only* sparse ones (it raises on the dense head
gradients), so a SparseAdam entry must take the parameters whose name contains ``"embed"`` and send
the rest to a dense fallback (``takes=lambda n, p: "embed" in n``, ``fallback="adam"``). The
table's parameter is named ``embed.weight`` for that. With plain SGD the two tasks are the same
trajectory (tested).

**Data hash**: the task's constants (vocabulary, classes, Zipf exponent, teacher dimension and
scale), the teacher's stream, the ids and labels of the seed's first batch (integers), and the
test split's size and stream (whose seed fixes every test draw) — not
:math:`p` or :math:`q`, floats whose last bits (a power, a matmul, a softmax) differ between CPUs.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from tasks import (
    Metric, Problem, Task, generator, hash_data, mean_and_se, register, sampled_label_loss, seeded,
)

ZIPF_EXPONENT = 1.1
TEACHER_DIM = 16
TEACHER_SCALE = 3.0
BUCKETS = (("head", 0.01), ("torso", 0.20), ("tail", 1.0))   # cumulative share of ids by frequency rank
N_TEST = 1 << 18      # test examples: se about 0.0026 nats, half a second to draw and score on a core
CHUNK = 1 << 16       # examples drawn and scored at once (bounded memory at any vocabulary)


def teacher_stream(vocab: int, classes: int) -> torch.Generator:
    return generator(0, f"embeddings:teacher:{vocab}:{classes}")


@functools.cache
def problem_data(vocab: int, classes: int):
    """(p, q, bucket): id probabilities [V], teacher class distributions [V, C] (float64, CPU),
    bucket index per id [V]; fixed by the task (seed 0)."""
    ranks = torch.arange(1, vocab + 1, dtype=torch.float64)
    p = ranks ** -ZIPF_EXPONENT
    p /= p.sum()
    g = teacher_stream(vocab, classes)
    t = torch.randn(vocab, TEACHER_DIM, generator=g, dtype=torch.float64)
    w = torch.randn(TEACHER_DIM, classes, generator=g, dtype=torch.float64) / TEACHER_DIM ** 0.5
    q = torch.softmax(TEACHER_SCALE * (t @ w), dim=-1)
    bucket = torch.zeros(vocab, dtype=torch.long)
    lo = 0
    for b, (_, cum) in enumerate(BUCKETS):
        hi = max(lo + 1, round(cum * vocab))
        bucket[lo:hi] = b
        lo = hi
    return p, q, bucket


class EmbeddingModel(torch.nn.Module):
    def __init__(self, vocab, dim, classes, sparse):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim, sparse=sparse)
        self.head = torch.nn.Linear(dim, classes)

    def forward(self, ids):
        return self.head(self.embed(ids))


def build(size, seed, device, dtype, *, sparse):
    vocab, dim, classes, bs = size["vocab"], size["dim"], size["classes"], size["batch"]
    p, q, bucket = problem_data(vocab, classes)
    cdf = torch.cumsum(p, 0)
    cdf_q = torch.cumsum(q, 1)
    with seeded(seed, "embeddings:init"):
        model = EmbeddingModel(vocab, dim, classes, sparse)
    model = model.to(device, dtype)

    def draw(g, n):
        """n examples from `g`: ids from p, then each one's label from its teacher row q[id]."""
        ids = torch.searchsorted(cdf, torch.rand(n, generator=g, dtype=torch.float64) * cdf[-1])
        ids = ids.clamp_(max=vocab - 1)
        u = torch.rand(n, 1, generator=g, dtype=torch.float64) * cdf_q[ids, -1:]
        labels = (cdf_q[ids] < u).sum(1).clamp_(max=classes - 1)
        return ids, labels

    def batch(step):
        ids, labels = draw(generator(seed, f"embeddings:batch:{step}"), bs)
        return ids.to(device), labels.to(device)

    def loss(model, batch):
        ids, labels = batch
        return F.cross_entropy(model(ids), labels)

    def hessian_loss(model, batch, generator):
        ids, _ = batch
        return sampled_label_loss(model(ids), generator)

    p_dev, q_dev, bucket_dev = p.to(device), q.to(device), bucket.to(device)
    target_class = q_dev.argmax(1)
    bayes = -(q * q.log()).sum(1)

    def evaluate(model):
        losses, correct = [], []
        with torch.no_grad():
            for lo in range(0, vocab, 65536):
                ids = torch.arange(lo, min(lo + 65536, vocab), device=device)
                logp = torch.log_softmax(model(ids).double(), -1)
                losses.append(-(q_dev[lo:lo + len(ids)] * logp).sum(1))
                correct.append((logp.argmax(1) == target_class[lo:lo + len(ids)]).double())
        ell, acc = torch.cat(losses), torch.cat(correct)
        out = {"val_loss": float(p_dev @ ell), "accuracy": float(p_dev @ acc)}
        for b, (name, _) in enumerate(BUCKETS):
            m = bucket_dev == b
            w = p_dev[m] / p_dev[m].sum()
            out[f"loss_{name}"] = float(w @ ell[m])
            out[f"acc_{name}"] = float(w @ acc[m])
        return out

    def test(model):
        g, losses, buckets = generator(seed, "embeddings:test"), [], []
        with torch.no_grad():
            for _ in range(N_TEST // CHUNK):
                ids, labels = draw(g, CHUNK)
                logits = model(ids.to(device)).double()
                losses.append(F.cross_entropy(logits, labels.to(device), reduction="none").cpu())
                buckets.append(bucket[ids])
        ell, where = torch.cat(losses), torch.cat(buckets)
        mean, se = mean_and_se(ell)
        return {"val_loss": mean, "n_test": len(ell), "se": se,
                **{f"loss_{name}": float(ell[where == b].mean()) for b, (name, _) in enumerate(BUCKETS)}}

    steps = size["steps"]
    extras = {"vocab": vocab, "dim": dim, "classes": classes, "batch": bs, "zipf_exponent": ZIPF_EXPONENT,
              "sparse": sparse, "bayes_loss": float(p @ bayes), "log_classes": float(torch.log(torch.tensor(classes)))}
    for b, (name, _) in enumerate(BUCKETS):
        m = bucket == b
        extras[f"ids_{name}"] = int(m.sum())
        extras[f"mass_{name}"] = float(p[m].sum())
        extras[f"bayes_loss_{name}"] = float((p[m] @ bayes[m]) / p[m].sum())
        # expected occurrences in training of the bucket's median-rank id
        mid = int(m.nonzero()[len(m.nonzero()) // 2])
        extras[f"expected_count_{name}_median_id"] = float(p[mid] * bs * steps)
    # The teacher's definition and the first batch's ids and labels: the seed's sample stream
    # enters through batch(0).
    return Problem(model=model, batch=batch, loss=loss, evaluate=evaluate, test=test, hessian_loss=hessian_loss,
                   hparam_defaults={"bs": bs},
                   data_hash=hash_data("embeddings", vocab, classes, ZIPF_EXPONENT, TEACHER_DIM, TEACHER_SCALE,
                                       teacher_stream(vocab, classes), *batch(0),
                                       N_TEST, generator(seed, "embeddings:test")),
                   extras={**extras, "n_test": N_TEST})


SIZES = {
    "smoke": dict(vocab=1000, dim=16, classes=8, batch=128, steps=30),
    "cpu": dict(vocab=20000, dim=32, classes=16, batch=512, steps=200),
    "gpu": dict(vocab=500_000, dim=64, classes=16, batch=8192, steps=4000),
}

DESCRIPTION = ("Zipf(1.1) ids -> nn.Embedding(sparse={}) -> linear head, noisy teacher labels; "
               "population loss overall and per frequency bucket")

DENSE = register(Task(
    name="embeddings-zipf", family="embeddings", description=DESCRIPTION.format(False),
    metric=Metric("val_loss", "min", target=1.6),
    sizes=SIZES,
    build=functools.partial(build, sparse=False),
    eval_every=20,
    provides=frozenset({"hessian"}),
))
DENSE.variant("embeddings-zipf-sparse", DESCRIPTION.format(True),
              build=functools.partial(build, sparse=True), requires=frozenset({"sparse"}))
