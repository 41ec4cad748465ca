r"""Schedule-Free AdamW (schedulefree.AdamWScheduleFree, the authors' package): no lr schedule;
momentum is replaced by interpolation (y) and averaging (x) of the base AdamW iterates (z).

With :math:`\gamma_t = \gamma \min(1, t/T_{\rm warmup})` (``lr``, ``warmup_steps``), decay
:math:`\lambda` and :math:`z_1 = x_1`:

.. math::
    y_t &= (1-\beta_1) z_t + \beta_1 x_t, \qquad g_t = \nabla f(y_t) \\
    v_t &= \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \qquad \hat v_t = v_t / (1-\beta_2^t) \\
    z_{t+1} &= z_t - \gamma_t\,\big(g_t / (\sqrt{\hat v_t} + \epsilon) + \lambda y_t\big) \\
    c_{t+1} &= w_t / \textstyle\sum_{i\le t} w_i, \qquad
        w_t = t^r\,(\max_{i\le t}\gamma_i)^{p} \quad(r = 0,\ p = 2 \text{ by default}) \\
    x_{t+1} &= (1-c_{t+1})\,x_t + c_{t+1} z_{t+1}

The model's parameters hold :math:`y` while training (the gradient is taken there) and
:math:`x` -- the point to evaluate and to ship -- only after ``optimizer.eval()``; the library
updates :math:`y` in place and stores :math:`z`, never :math:`x`.

Paper: Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled", NeurIPS
2024 (Algorithm 1). Implementation: schedulefree.AdamWScheduleFree (facebookresearch/schedule_free,
the authors' code). Where the library differs from the paper's Algorithm 1: the paper puts Adam's
bias correction into the step size, :math:`\gamma_t = \gamma\sqrt{1-\beta_2^t}\min(1, t/T_{\rm
warmup})`, used for the gradient step, the decay step *and* the averaging weights
:math:`c_{t+1} = \gamma_t^2/\sum\gamma_i^2`; since version 1.3 the library corrects :math:`v`
instead (the form above), so the decay is no longer scaled down by :math:`\sqrt{1-\beta_2^t}` in
the first :math:`\sim 1/(1-\beta_2)` steps and the first iterates weigh as much in the average as
later ones (the README: "changes the behavior of weight decay during learning rate warmup to improve
stability"). With :math:`\lambda = 0` the two differ only in where :math:`\epsilon` sits and in
:math:`c_t`. The paper's form is kept as schedulefree.AdamWScheduleFreePaper (see
facebookresearch/schedule_free issue 38 on the placement of the bias correction). The weights use
the running maximum of :math:`\gamma_t`, which equals :math:`\gamma_t` for the warm-up-then-constant
lr here (it differs only under a decreasing external schedule, which schedule-free does not need).

How it was checked: ``tests/test_update_rules.py`` computes three steps (with warm-up and decay) by
hand in float64 from the equations above and compares :math:`y` (the parameters in train mode)
and :math:`x` (after ``optimizer.eval()``) with this entry's optimizer, and the paper's Algorithm 1
with AdamWScheduleFreePaper, each to 1e-12 relative.

Train / eval switching -- what the harness must do. The optimizer has a mode, kept in its param
groups (so in its state_dict): ``optimizer.train()`` before training steps (``step()`` raises in
eval mode) and ``optimizer.eval()`` before evaluation and before saving a checkpoint meant for
evaluation or deployment, ``optimizer.train()`` again before the next step -- at the same places as
``model.train()`` / ``model.eval()``. This entry's ``build`` leaves the optimizer in train mode, so it
builds and steps in any loop. The optimizer defines ``train()`` and ``eval()``, which is all a loop
needs to recognise it (duck typing, as for the model; no registry field): a harness that switches
such optimizers around every evaluation and checkpoint evaluates at :math:`x`; one that does not
evaluates at :math:`y`, which understates the method. ``load_state_dict`` restores the mode that
was saved, so a checkpoint saved in eval mode (model at :math:`x`) must be followed by
``optimizer.train()`` after loading, exactly as the uninterrupted run switched back.
BatchNorm: its running statistics are accumulated at :math:`y` during training; before evaluating
at :math:`x`, recompute them at :math:`x` -- ``model.train(); optimizer.eval()``, run ~50 training
batches forward under ``torch.no_grad()``, then ``model.eval()`` (the authors' README) -- or
use precise BN. The library also normalises ``p.grad`` in place during ``step()``, so a monitor
that reads gradients after the step sees :math:`g/(\sqrt{\hat v}+\epsilon)`, not :math:`g`.

Defaults (the library's): lr 0.0025 (the authors advise 1-10x AdamW's lr), betas (0.9, 0.999),
eps 1e-8, weight_decay 0 (decoupled, at :math:`y`, scaled by :math:`\gamma_t`), warmup_steps 0
(the authors recommend a warm-up; it is a tuning choice here), r 0, weight_lr_power 2.

State per parameter: ``z`` and ``exp_avg_sq`` (the parameter's dtype and shape). The step count,
weight sum and lr maximum live in the param group.
"""
from optimizers import Moment, OptimizerSpec, at_least, itemsize, numel, register


def schedule_free_state_bytes(shape, dtype):
    return 2 * numel(shape) * itemsize(dtype)


def build_schedule_free_adamw(params, **hp):
    from schedulefree import AdamWScheduleFree
    opt = AdamWScheduleFree(params, **hp)
    opt.train()   # the library starts in eval mode and refuses to step there
    return opt


register(OptimizerSpec(
    name="schedulefree-adamw", family="schedule-free", paper="Defazio et al. 2024",
    moments={"m": "schedule-free AdamW keeps no gradient average (z is the sequence its iterate averages)",
             "v": (Moment("exp_avg_sq"),)},
    implementation="schedulefree.AdamWScheduleFree", build=build_schedule_free_adamw,
    defaults=dict(lr=2.5e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0,
                  r=0.0, weight_lr_power=2.0),
    lr_range=(1e-5, 1.0),
    hparam_rules=dict(warmup_steps=at_least(0), r=at_least(0), weight_lr_power=at_least(0)),
    package="schedulefree",
    tunes_beta2=True,   # v's EMA is Adam's (beta1 is the interpolation y, not a gradient average)
    takes_schedule=False,   # its averaging replaces the schedule (the method's point)
    state_bytes=schedule_free_state_bytes,
))
