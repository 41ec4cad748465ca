"""`precision`: one optimizer on one task at its tuned hyperparameters, trained as practitioners
train in mixed precision (see `workflows.engine.amp`), against fp32.

Variants, each for every seed: fp32; bf16 without loss scaling; fp16 without loss scaling; fp16
with a static scale c for each c of `static_scales`; fp16 with dynamic scaling (GradScaler, its
growth interval `growth_interval`). Every low-precision run probes its gradient against an fp32
backward of the same batch every `probe_every` steps (underflow: exactly 0 where fp32 is not;
overflow: inf or NaN).

The stress condition (`stress_scale` s < 1): the task's loss × s in fp32, fp16 unscaled and fp16
dynamic, so that the backward's values fall below fp16's range (2^-24) as the small activation
gradients of Micikevicius et al. 2018, §3.2 do. It runs for the optimizers whose update does not
change when every gradient is multiplied by s (`SCALE_INVARIANT`): AdamW's m / (sqrt(v) + eps) has
m and sqrt(v) × s, so with eps × s too the update is the same in exact arithmetic (its decay is
decoupled from the gradient; Adam's L2 decay joins the gradient unscaled, so Adam is invariant only
at weight decay 0, which a tuning may not keep), and with s a
power of 2 in IEEE arithmetic as well (every product and sum is exactly × s, absent subnormals in
fp32): fp32 at s trains as fp32 at 1, and what changes is fp16's range alone. With eps left at
1e-8 it is not so: at s = 2^-20 eps is 0.01 in units of the unscaled gradient, and fp32 trains
differently. A static scale c under s is the arithmetic of c · s at scale 1 (exact, powers of 2),
a replica of a scale-1 run (fp16 unscaled at c = 1/s), so none is run again.

`run` returns one record (kind "precision") holding every run; `table_rows` and `scale_rows`
turn it into the tidy rows of results/tables/<profile>/precision.csv and precision_scale.csv.
"""
from __future__ import annotations

import math

import optimizers
import tasks
from workflows.engine import amp
from workflows.engine.harness import RunConfig, record_header, task_defaults, train
from workflows.engine.measurements import Measurement
from workflows.engine.pairs import pairs
from workflows.engine.plan import settings
from workflows.engine.schedule import for_task, run_options

STRESS_ARMS = (dict(precision="fp32"), dict(precision="fp16"), dict(precision="fp16", loss_scaling="dynamic"))
SCALE_INVARIANT = ("adamw",)
# A run without overflow has room for this many doublings of the dynamic scale (2^16 -> 2^20):
# growth_interval = steps // (GROWTHS + 1). The interval trades growth against skipped steps: at the
# overflow edge the scaler doubles into an inf and skips one step in growth_interval + 1. Measured on
# cnn-digits at cpu size (90 steps), AdamW at its cpu lr, 5 seeds, the mean final accuracy against
# fp32's: at constant lr, interval 10 skips 5-7 steps a run and ends 2.5 points below, 30 skips 1-2
# and ends 1.2 below; at the profile's cosine schedule, 18 (this rule) skips 3, grows 4 times and
# ends 0.1 below. GradScaler's own 2000 never grows in such a run.
GROWTHS = 4


def variants(static_scales: list[float]) -> list[dict]:
    """The RunConfig options of each variant at scale 1, in the order they run."""
    out = [dict(precision="fp32"), dict(precision="bf16"), dict(precision="fp16")]
    out += [dict(precision="fp16", loss_scaling="static", static_scale=float(c)) for c in static_scales]
    return out + [dict(precision="fp16", loss_scaling="dynamic")]


def default_growth_interval(steps: int) -> int:
    return max(1, steps // (GROWTHS + 1))


def stresses(optimizer: str, stress_scale: float) -> bool:
    """Whether the job of `optimizer` runs the stress condition."""
    return stress_scale != 1.0 and optimizer in SCALE_INVARIANT


def check_stress_scale(stress_scale: float) -> None:
    """A power of 2 in (0, 1] (exact scaling in IEEE arithmetic), else ValueError naming it."""
    number = isinstance(stress_scale, (int, float)) and math.isfinite(stress_scale)
    mantissa = math.frexp(stress_scale)[0] if number else 0
    if not (0 < stress_scale <= 1 and mantissa == 0.5):
        raise ValueError(f"stress_scale={stress_scale!r}: must be a power of 2 in (0, 1] (exact scaling in IEEE "
                         f"arithmetic); valid: e.g. 2^-20 = {2.0 ** -20!r}, or 1.0 for no stress condition")


def stress_hparams(task: str, optimizer: str, hparams: dict, stress_scale: float) -> dict:
    """`hparams` with eps × `stress_scale` (see the module's docstring)."""
    spec = optimizers.get(optimizer)
    hp = spec.hparams(task_defaults(tasks.get(task), spec) | hparams)
    return dict(hparams, eps=hp["eps"] * stress_scale)


def run(task: str, optimizer: str, size: str, hparams: dict, seeds: list[int], static_scales: list[float],
            device: str = "cpu", threads: int = 1, steps: int | None = None, schedule: dict | None = None,
            probe_every: int | None = None, stress_scale: float = 1.0, growth_interval: int | None = None,
            fp32_precision: str = "ieee", deterministic: bool = True) -> dict:
    """Every variant × seed at `hparams` (the tuned lr, and whatever else the tuning selected), then,
    for a scale-invariant optimizer, every stress arm × seed at loss × `stress_scale` (1: none).
    `schedule`: the profile's `schedule:` mapping (workflows.engine.schedule.run_options), as the final
    runs use it, stretched to `steps`. `probe_every`: None gives 10 probes a run. `growth_interval`:
    the dynamic scaler's; None gives `default_growth_interval(steps)`."""
    check_stress_scale(stress_scale)
    steps = steps or tasks.get(task).size(size)["steps"]
    probe_every = probe_every or max(1, steps // 10)
    growth_interval = default_growth_interval(steps) if growth_interval is None else growth_interval
    options = run_options(for_task(task, schedule), steps, optimizers.get(optimizer).takes_schedule)
    arms = [(1.0, dict(hparams), v) for v in variants(static_scales)]
    stressed = stress_hparams(task, optimizer, hparams, stress_scale) if stresses(optimizer, stress_scale) else None
    arms += [(stress_scale, stressed, v) for v in STRESS_ARMS] if stressed else []
    configs = [RunConfig(task, optimizer, size=size, seed=seed, steps=steps, hparams=hp, device=device,
                         loss_scale=scale, probe_every=0 if v["precision"] == "fp32" else probe_every,
                         fp32_precision=fp32_precision, deterministic=deterministic, **options, **v)
               for scale, hp, v in arms for seed in seeds]   # all checked before the first run
    with amp.growth_interval(growth_interval):
        runs = [_run(cfg, threads) for cfg in configs]
    metric = tasks.get(task).metric
    config = dict(task=task, optimizer=optimizer, size=size, hparams=dict(sorted(hparams.items())), seeds=seeds,
                  static_scales=[float(c) for c in static_scales], steps=steps, probe_every=probe_every,
                  growth_interval=growth_interval, stress_scale=float(stress_scale),
                  stress_hparams=dict(sorted(stressed.items())) if stressed else None, schedule=options, device=device)
    return {**record_header("precision", config, device, threads), "metric": metric.name,
            "direction": metric.direction, "runs": runs}


def _run(cfg: RunConfig, threads: int) -> dict:
    """One run's entry in the record. Growths and backoffs: the steps at which the dynamic scale is
    above or below the step before's (the scaler's update after the last step is not seen)."""
    r = train(cfg, threads=threads)
    mixed = r["precision"] or {"skipped_steps": 0, "skipped": [], "scale": None, "probes": []}
    scale = mixed["scale"] or []
    return {"seed": cfg.seed, "loss_scale": cfg.loss_scale, "precision": cfg.precision,
            "loss_scaling": cfg.loss_scaling, "static_scale": cfg.static_scale, "final_metric": r["final_metric"],
            "final_loss": r["final_loss"], "diverged": r["diverged"], "diverge_reason": r["diverge_reason"],
            "steps_done": r["steps_done"], "train_seconds": r["train_seconds"],
            "skipped_steps": mixed["skipped_steps"], "skipped": mixed["skipped"], "scale": mixed["scale"],
            "growths": sum(b > a for a, b in zip(scale, scale[1:])),
            "backoffs": sum(b < a for a, b in zip(scale, scale[1:])),
            "probes": mixed["probes"], "loss": r["curves"]["loss"]}


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if math.isfinite(x)]
    return sum(xs) / len(xs) if xs else math.nan


def table_rows(record: dict) -> list[dict]:
    """One row per run: its variant, final metric, divergence, skipped steps, and the mean over
    its probes of the underflow and overflow shares (NaN for fp32, which has none). `scale` is the
    static c, 1 without scaling, NaN for dynamic (its trajectory is in `scale_rows`); `loss_scale`
    the stress condition's s (1 outside it); growths and backoffs the dynamic scale's (0 otherwise)."""
    c = record["config"]
    rows = []
    for r in record["runs"]:
        probes = r["probes"]
        scale = r["static_scale"] if r["loss_scaling"] != "dynamic" else math.nan
        rows.append({"task": c["task"], "optimizer": c["optimizer"], "seed": r["seed"], "loss_scale": r["loss_scale"],
                     "precision": r["precision"], "loss_scaling": r["loss_scaling"], "scale": scale,
                     "lr": c["hparams"].get("lr", math.nan), "metric": record["metric"],
                     "direction": record["direction"], "final_metric": r["final_metric"],
                     "final_loss": r["final_loss"], "diverged": r["diverged"], "steps": c["steps"],
                     "steps_done": r["steps_done"], "skipped_steps": r["skipped_steps"],
                     "underflow_share": _mean([p["underflow_share"] for p in probes]),
                     "overflow_share": _mean([p["overflow_share"] for p in probes]),
                     "max_underflow_share": max((p["underflow_share"] for p in probes), default=math.nan),
                     "final_scale": r["scale"][-1] if r["scale"] else math.nan,
                     "growth_interval": c["growth_interval"], "growths": r["growths"], "backoffs": r["backoffs"],
                     "train_seconds": r["train_seconds"]})
    return rows


def scale_rows(record: dict) -> list[dict]:
    """The dynamic scale's trajectory, tidy: a row at the first step, at every step where the scale
    changes, and at the last step (the scale is constant in between, so these rows draw it whole)."""
    c = record["config"]
    rows = []
    for r in record["runs"]:
        scale = r["scale"]
        if not scale:
            continue
        keep = [0] + [i for i in range(1, len(scale)) if scale[i] != scale[i - 1]] + [len(scale) - 1]
        rows += [{"task": c["task"], "optimizer": c["optimizer"], "seed": r["seed"], "loss_scale": r["loss_scale"],
                  "step": i, "scale": scale[i]} for i in sorted(set(keep))]
    return rows


def steps(task: str, size: str, steps_fraction: float) -> int:
    """A precision run's steps: `steps_fraction` of the task's."""
    return max(1, int(tasks.get(task).size(size)["steps"] * steps_fraction))


def rows(record: dict) -> dict:
    return {"precision": table_rows(record), "precision_scale": scale_rows(record),
            "compute_seconds": sum(r["train_seconds"] for r in record["runs"])}


def jobs(config: dict) -> list[tuple[str, str]]:
    return [(t, o) for t0 in config["precision"]["tasks"]
            for t, o in pairs(config, [t0], settings(config, "precision", t0)["optimizers"])]


def cost(config: dict, task: str, optimizer: str) -> tuple[int, int]:
    """fp32, bf16, fp16 unscaled, each static scale, dynamic; and the stress arms where the optimizer
    runs them. (fp16 steps cost 10-15x fp32's on a CPU without native fp16 maths, which a
    calibration in fp32 does not see.)"""
    p = settings(config, "precision", task)
    stress = len(STRESS_ARMS) if stresses(optimizer, p["stress_scale"]) else 0
    runs = len(p["seeds"]) * (len(p["static_scales"]) + 4 + stress)
    return runs, runs * steps(task, config["size"], p["steps_fraction"])


MEASUREMENT = Measurement(name="precision", kind="precision", run=run, rows=rows,
                          tables=("precision", "precision_scale"), jobs=jobs, cost=cost, reads_selection=True)
