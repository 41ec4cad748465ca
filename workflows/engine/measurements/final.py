"""`final`: runs at the selected hyperparameters, one record (kind "run", track "tuned") per final
seed, each ending with the task's held-out test split (`train(..., test=True)`); its rows are the
runs, curves, monitor and routing tables, and the samples of a task that draws some.

In the runs table, `final_metric` is the number the report shows: the test split's metric where
the task has one (`metric_split` "test"), else the objective's at the end of the run ("objective");
`val_metric` is the validation split's last value (what the curves end at, and what a tuning run's
`final_metric` is: tuning selects on it), and `test_metric`, `test_n`, `test_se` the test split's
value, size and standard error (empty without one)."""
from __future__ import annotations

import numpy as np

import optimizers
import tasks
from workflows.engine import schedule as schedules
from workflows.engine.harness import RunConfig, train
from workflows.engine.measurements import Measurement
from workflows.engine.pairs import pairs

CURVE_POINTS = 200  # per run: enough for a figure, small enough to publish
SPLITS = ("test", "objective")   # where a run's reported number is measured (harness._record)


def run(task: str, optimizer: str, size: str, seed: int, hparams: dict | None, schedule: dict | None = None,
        device="cpu", threads=1, progress=False, checkpoint=None, checkpoint_every=0, monitor_every=0,
        precision: str = "fp32", fp32_precision: str = "ieee", deterministic: bool = True) -> dict:
    """One final run at the tuned `hparams` (the sweep's selection, lr included) under the
    profile's `schedule`, in `precision` (autocast; the profile's `train_precision`); with
    `hparams=None`, the self-tuning track's run (workflows.engine.measurements.defaults): every
    hyperparameter at the entry's (library's or paper's) defaults and the task's, no tuning, the
    same schedule."""
    steps = tasks.get(task).size(size)["steps"]
    options = schedules.run_options(schedules.for_task(task, schedule), steps, optimizers.get(optimizer).takes_schedule)
    record = train(RunConfig(task, optimizer, size=size, seed=seed, hparams=dict(hparams or {}),
                             device=device, monitor_every=monitor_every, precision=precision,
                             fp32_precision=fp32_precision, deterministic=deterministic, **options),
                   threads=threads, progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                   test=True)
    return {**record, "track": "defaults" if hparams is None else "tuned"}


def _thin(n: int) -> list[int]:
    if n <= CURVE_POINTS:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, CURVE_POINTS).round().astype(int).tolist()))


def reported(r: dict) -> float:
    """The number a final run reports: its test split's metric, or where the task has none (its
    metric is its objective) the last evaluation's. A record of a task with a test split that did
    not evaluate it is refused (ValueError: a malformed final record)."""
    split = r["metric_split"]
    if split not in SPLITS:
        raise ValueError(f"metric_split {split!r}; valid: {', '.join(SPLITS)}")
    if split == "objective":
        return r["final_metric"]
    if r["test_metric"] is None:
        raise ValueError("a run of a task with a test split that did not evaluate it (train(..., test=True))")
    return r["test_metric"]


def run_row(r: dict) -> dict:
    c, t, o = r["config"], r["task"], r["optimizer"]
    return {
        "task": t["name"], "task_family": t["family"], "track": r.get("track", "tuned"), "optimizer": o["name"], "family": o["family"], "implementation": o["implementation"],
        "seed": c["seed"], "lr": o["hparams"]["lr"],
        "weight_decay": o["hparams"].get("weight_decay"),
        "schedule": c.get("schedule", "constant"), "metric": t["metric"], "direction": t["direction"],
        "target": t["target"], "final_metric": reported(r), "metric_split": r["metric_split"],
        "val_metric": r["final_metric"], "test_metric": r["test_metric"], "test_n": r["test_n"],
        "test_se": r["test_se"], "final_loss": r["final_loss"],
        "diverged": r["diverged"], "diverge_reason": r["diverge_reason"] or "",
        "steps": r["steps_done"], "steps_to_target": r["steps_to_target"],
        "seconds_to_target": r["seconds_to_target"], "step_time_median": r["step_time"]["median"],
        "state_bytes": r["state_bytes"]["measured"], "state_bytes_model": r["state_bytes"]["model"],
        "state_bytes_per_param": r["state_bytes"]["per_param"], "n_params": t["n_params"],
        "peak_memory_bytes": r["peak_memory_bytes"], "train_seconds": r["train_seconds"],
        "data_hash": t["data_hash"], "config_hash": r["config_hash"],
    }


def curve_rows(r: dict) -> list[dict]:
    key = dict(task=r["task"]["name"], optimizer=r["optimizer"]["name"], seed=r["config"]["seed"])
    loss = r["curves"]["loss"]
    rows = [{**key, "series": "loss", "step": i, "value": loss[i]} for i in _thin(len(loss))]
    # every evaluated quantity: the metric, and what a task adds (per-bucket losses, coordinates...)
    rows += [{**key, "series": name, "step": e["step"], "value": value}
             for e in r["curves"]["eval"] for name, value in e.items() if name != "step"]
    return rows


def rows(r: dict) -> dict:
    key = dict(task=r["task"]["name"], optimizer=r["optimizer"]["name"], seed=r["config"]["seed"])
    found = {"runs": [run_row(r)], "curves": curve_rows(r),
             "monitor": [{**key, **row} for row in r.get("monitor", [])],
             "routing": [{**key, **row, "names": " ".join(row["names"])} for row in r["optimizer"]["routing"]]}
    if r.get("samples"):
        found["samples"] = {(key["task"], key["optimizer"], key["seed"]): r["samples"]}
    found["compute_seconds"] = r["train_seconds"]
    return found


def cost(config: dict, task: str, optimizer: str) -> tuple[int, int]:
    seeds = len(config["final_seeds"])
    return seeds, seeds * tasks.get(task).size(config["size"])["steps"]


MEASUREMENT = Measurement(name="final", kind="run", run=run, rows=rows, tables=("runs", "curves", "monitor", "routing"),
                          jobs=lambda config: pairs(config), cost=cost, per_seed=True, reads_selection=True,
                          track="tuned")
