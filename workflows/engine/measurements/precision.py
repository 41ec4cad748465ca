"""`precision`: one optimizer on one task at its tuned hyperparameters, trained as practitioners
train in mixed precision (see `workflows.engine.amp`), against fp32.

Variants, each for every seed: fp32; bf16 without loss scaling; fp16 without loss scaling; fp16
with a static scale c for each c of `static_scales`; fp16 with dynamic scaling (GradScaler). Every
low-precision run probes its gradient against an fp32 backward of the same batch every
`probe_every` steps (underflow: exactly 0 where fp32 is not; overflow: inf or NaN).

`run` returns one record (kind "precision") holding every run; `table_rows` and `scale_rows`
turn it into the tidy rows of results/tables/<profile>/precision.csv and precision_scale.csv.
"""
from __future__ import annotations

import math

import optimizers
import tasks
from workflows.engine.harness import RunConfig, record_header, train
from workflows.engine.measurements import Measurement
from workflows.engine.pairs import pairs
from workflows.engine.plan import settings
from workflows.engine.schedule import for_task, run_options


def variants(static_scales: list[float]) -> list[dict]:
    """The RunConfig options of each variant, in the order they run."""
    out = [dict(precision="fp32"), dict(precision="bf16"), dict(precision="fp16")]
    out += [dict(precision="fp16", loss_scaling="static", static_scale=float(c)) for c in static_scales]
    return out + [dict(precision="fp16", loss_scaling="dynamic")]


def run(task: str, optimizer: str, size: str, hparams: dict, seeds: list[int], static_scales: list[float],
            device: str = "cpu", threads: int = 1, steps: int | None = None, schedule: dict | None = None,
            probe_every: int | None = None, fp32_precision: str = "ieee", deterministic: bool = True) -> dict:
    """Every variant × seed at `hparams` (the tuned lr, and whatever else the tuning selected).
    `schedule`: the profile's `schedule:` mapping (workflows.engine.schedule.run_options), as the final
    runs use it, stretched to `steps`. `probe_every`: None gives 10 probes a run."""
    steps = steps or tasks.get(task).size(size)["steps"]
    probe_every = probe_every or max(1, steps // 10)
    options = run_options(for_task(task, schedule), steps, optimizers.get(optimizer).takes_schedule)
    configs = [RunConfig(task, optimizer, size=size, seed=seed, steps=steps, hparams=dict(hparams), device=device,
                         probe_every=0 if v["precision"] == "fp32" else probe_every,
                         fp32_precision=fp32_precision, deterministic=deterministic, **options, **v)
               for v in variants(static_scales) for seed in seeds]   # all checked before the first run
    runs = []
    for cfg in configs:
        r = train(cfg, threads=threads)
        mixed = r["precision"] or {"skipped_steps": 0, "skipped": [], "scale": None, "probes": []}
        runs.append({"seed": cfg.seed, "precision": cfg.precision, "loss_scaling": cfg.loss_scaling,
                     "static_scale": cfg.static_scale, "final_metric": r["final_metric"],
                     "final_loss": r["final_loss"], "diverged": r["diverged"], "diverge_reason": r["diverge_reason"],
                     "steps_done": r["steps_done"], "train_seconds": r["train_seconds"],
                     "skipped_steps": mixed["skipped_steps"], "skipped": mixed["skipped"],
                     "scale": mixed["scale"], "probes": mixed["probes"], "loss": r["curves"]["loss"]})
    metric = tasks.get(task).metric
    config = dict(task=task, optimizer=optimizer, size=size, hparams=dict(sorted(hparams.items())), seeds=seeds,
                  static_scales=[float(c) for c in static_scales], steps=steps, probe_every=probe_every,
                  schedule=options, device=device)
    return {**record_header("precision", config, device, threads), "metric": metric.name,
            "direction": metric.direction, "runs": runs}


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if math.isfinite(x)]
    return sum(xs) / len(xs) if xs else math.nan


def table_rows(record: dict) -> list[dict]:
    """One row per run: its variant, final metric, divergence, skipped steps, and the mean over
    its probes of the underflow and overflow shares (NaN for fp32, which has none). `scale` is the
    static c, 1 without scaling, NaN for dynamic (its trajectory is in `scale_rows`)."""
    c = record["config"]
    rows = []
    for r in record["runs"]:
        probes = r["probes"]
        scale = r["static_scale"] if r["loss_scaling"] != "dynamic" else math.nan
        rows.append({"task": c["task"], "optimizer": c["optimizer"], "seed": r["seed"],
                     "precision": r["precision"], "loss_scaling": r["loss_scaling"], "scale": scale,
                     "lr": c["hparams"].get("lr", math.nan), "metric": record["metric"],
                     "direction": record["direction"], "final_metric": r["final_metric"],
                     "final_loss": r["final_loss"], "diverged": r["diverged"], "steps": c["steps"],
                     "steps_done": r["steps_done"], "skipped_steps": r["skipped_steps"],
                     "underflow_share": _mean([p["underflow_share"] for p in probes]),
                     "overflow_share": _mean([p["overflow_share"] for p in probes]),
                     "max_underflow_share": max((p["underflow_share"] for p in probes), default=math.nan),
                     "final_scale": r["scale"][-1] if r["scale"] else math.nan,
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
        rows += [{"task": c["task"], "optimizer": c["optimizer"], "seed": r["seed"], "step": i, "scale": scale[i]}
                 for i in sorted(set(keep))]
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
    """fp32, bf16, fp16 unscaled, each static scale, dynamic. (fp16 steps cost 10-15x fp32's on a
    CPU without native fp16 maths, which a calibration in fp32 does not see.)"""
    p = settings(config, "precision", task)
    runs = len(p["seeds"]) * (len(p["static_scales"]) + 4)
    return runs, runs * steps(task, config["size"], p["steps_fraction"])


MEASUREMENT = Measurement(name="precision", kind="precision", run=run, rows=rows,
                          tables=("precision", "precision_scale"), jobs=jobs, cost=cost, reads_selection=True)
