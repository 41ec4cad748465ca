"""results/tables/<profile>/ -> report/<profile>/README.md and figures/*.png.

Reads the CSV tables and environment.json only: every number in the report comes from a run the
pipeline made. The body carries no timestamp beyond the environment block, the bootstrap is
seeded, and the figures carry no date, so the same tables give the same bytes.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from report import claims, cost, precision, stats, studies  # noqa: E402
from report.output import md_table, save  # noqa: E402
from report import tuning as tuning_report  # noqa: E402

TABLES = ("runs", "curves", "tuning", "stability", "steptime", "loop_options", "monitor", "samples", "skipped",
          "memory_model", "precision", "precision_scale", "routing", "cost", "cost_summary", "plan")


def fmt(x, digits=4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}g}"


def read_tables(tables: Path) -> dict:
    """Every table of the directory by name; the ones a section reads are there, empty, if absent."""
    out = {name: pd.DataFrame() for name in TABLES}
    for path in sorted(tables.glob("*.csv")):
        try:
            out[path.stem] = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            pass
    for name in ("environment", "figures"):
        path = tables / f"{name}.json"
        out[name] = json.loads(path.read_text()) if path.exists() else {}
    return out


def baseline_name(steptime: pd.DataFrame) -> str:
    """The step-time baseline as the report names it (the profile's `steptime.baseline`)."""
    return str(steptime["baseline"].iloc[0]) if len(steptime) else "baseline"


def step_ratio(runs: pd.DataFrame, steptime: pd.DataFrame, task: str, opt: str) -> str:
    """Step time over the baseline's (the profile's `steptime.baseline`): the step-time job's same-process ratio where it measured this pair;
    otherwise the ratio of median step times in the final runs (separate jobs), marked ≈."""
    same_job = steptime[(steptime.task == task) & (steptime.optimizer == opt)] if len(steptime) else []
    if len(same_job):
        return fmt(float(same_job["ratio_to_baseline"].iloc[0]), 3)
    baseline = steptime["baseline"].iloc[0] if len(steptime) else None   # the profile's, one per run
    medians = runs[runs.task == task].groupby("optimizer")["step_time_median"].median()
    if baseline not in medians or not medians[baseline] > 0:
        return "–"
    return "≈" + fmt(float(medians[opt] / medians[baseline]), 3)


def summary_table(runs: pd.DataFrame, tuning: pd.DataFrame, steptime: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, opt), g in runs.groupby(["task", "optimizer"], sort=True):
        ok = g[~g["diverged"]]
        mean, lo, hi = stats.bootstrap_ci(ok["final_metric"].tolist())
        reached = g["steps_to_target"].dropna()
        trials = tuning[(tuning.task == task) & (tuning.optimizer == opt)] if len(tuning) else tuning
        edges = set(", ".join(trials["edge"].dropna().astype(str)).split(", ")) if "edge" in trials else set()
        rows.append({
            "task": task, "optimizer": opt,
            "lr": fmt(g["lr"].iloc[0], 3) + (" (edge)" if "lr" in edges else ""),
            # tuned with lr where the entry's search space has it; the entry's default otherwise
            "weight decay": (fmt(g["weight_decay"].iloc[0], 3) + (" (edge)" if "weight_decay" in edges else "")
                             if "weight_decay" in g else "–"),
            f"final {g['metric'].iloc[0]} (95% CI)": f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]",
            "diverged": f"{int(g['diverged'].sum())}/{len(g)}",
            "steps to target": f"{fmt(float(reached.median()))} ({len(reached)}/{len(g)})" if len(reached) else f"– (0/{len(g)})",
            "s to target": fmt(float(g["seconds_to_target"].dropna().median())) if len(reached) else "–",
            "step time (µs)": fmt(float(g["step_time_median"].median()) * 1e6, 3),
            f"step / {baseline_name(steptime)}": step_ratio(runs, steptime, task, opt),
            "state B/param": fmt(float(g["state_bytes_per_param"].iloc[0]), 4),
            "_mean": mean,
        })
    return pd.DataFrame(rows)


def curves_figure(curves: pd.DataFrame, task: str, metric: str, out: Path) -> str:
    c = curves[curves.task == task]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, series, title in ((axes[0], "loss", "training loss"), (axes[1], metric, f"validation {metric}")):
        d = c[c.series == series]
        # the band computed here, vectorised over steps: seaborn's per-point bootstrap took minutes
        for opt, color in zip(sorted(d.optimizer.unique()), sns.color_palette("tab20", d.optimizer.nunique())):
            m = d[d.optimizer == opt].pivot_table(index="seed", columns="step", values="value", dropna=False)
            mean, lo, hi = stats.bootstrap_band(m.to_numpy())
            ax.plot(m.columns, mean, color=color, linewidth=1.2, label=opt)
            ax.fill_between(m.columns, lo, hi, color=color, alpha=0.2, linewidth=0)
        ax.legend(fontsize=7, ncol=2)
        ax.set_xlabel("step")
        positive = (d["value"] > 0).all() and len(d)
        if positive and d["value"].max() / max(d["value"].min(), 1e-300) > 100:
            ax.set_yscale("log")
        ax.set_title(f"{task}: {title} (mean, 95% CI over seeds)")
        ax.set_ylabel(series)
    return save(fig, out, f"curves-{task}")


def final_evals(curves: pd.DataFrame, task: str, exclude=("loss",)) -> pd.DataFrame:
    """Each evaluated series at each run's last evaluation, averaged over seeds: optimizer x series."""
    c = curves[(curves.task == task) & ~curves.series.isin(exclude) & (curves.step > 0)]
    if c.empty:
        return pd.DataFrame()
    last = c[c.step == c.groupby(["optimizer", "seed"]).step.transform("max")]
    return last.groupby(["optimizer", "series"]).value.mean().unstack("series")


def extras_lines(curves: pd.DataFrame, task: str, metric: str, out: Path) -> list[str]:
    """What the task evaluates besides its metric (per-bucket losses, modes covered, perplexity...)."""
    table = final_evals(curves, task, exclude=("loss", metric))
    if table.empty:
        return []
    lines = ["Other evaluated quantities at the end of the final runs (mean over seeds):", "",
             md_table(table.reset_index().map(lambda x: fmt(x) if isinstance(x, float) else x)), ""]
    buckets = [c for c in table.columns if c.startswith("loss_")]
    if buckets:
        d = table[buckets].reset_index().melt(id_vars="optimizer", var_name="bucket", value_name="loss")
        d["bucket"] = d["bucket"].str.removeprefix("loss_")
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        sns.barplot(data=d, x="optimizer", y="loss", hue="bucket", ax=ax)
        ax.tick_params(axis="x", rotation=45)
        ax.set_title(f"{task}: validation loss by id-frequency bucket (head = most frequent ids)")
        lines += [f"![buckets {task}]({save(fig, out, f'buckets-{task}')})", ""]
    return lines


def plane_layers(ax, plane: dict) -> None:
    """A task's reference layers in the plane (figures.json): contours, marked points, limits."""
    if "contour" in plane:
        c = plane["contour"]
        ax.contour(c["x"], c["y"], np.asarray(c["z"]), levels=15, colors="0.8", linewidths=0.6)
    for label, pts in pd.DataFrame(plane.get("points", []), columns=["x", "y", "label"]).groupby("label", sort=False):
        ax.scatter(pts.x, pts.y, marker="x", color="red", s=20, zorder=4, label=label)
    ax.set_xlim(*plane["xlim"])
    ax.set_ylim(*plane["ylim"])


def trajectory_lines(curves: pd.DataFrame, task: str, figure: dict, out: Path) -> list[str]:
    """Paths in the plane for tasks that evaluate a 2-D position (x, y): Rosenbrock's valley."""
    c = curves[(curves.task == task) & curves.series.isin(["x", "y"])]
    if c.series.nunique() < 2:
        return []
    first = c[c.seed == c.groupby("optimizer").seed.transform("min")]
    path = first.pivot_table(index=["optimizer", "step"], columns="series", values="value").reset_index()
    fig, ax = plt.subplots(figsize=(7, 5.2))
    sns.lineplot(data=path, x="x", y="y", hue="optimizer", sort=False, estimator=None, ax=ax, linewidth=1.1)
    start = path[path.step == path.step.min()]
    ax.scatter(start.x, start.y, color="k", s=15, zorder=3)
    if "plane" in figure:
        plane_layers(ax, figure["plane"])
    ax.set_title(f"{task}: paths of the first final seed (evaluated every few steps; start in black)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return [f"![trajectories {task}]({save(fig, out, f'trajectories-{task}')})", ""]


def samples_lines(samples: pd.DataFrame, task: str, figure: dict, out: Path) -> list[str]:
    """Points drawn from each trained model, one panel per optimizer, over the task's reference
    layers (the GAN's generated samples against the data's modes)."""
    s = samples[samples.task == task] if len(samples) else samples
    if s.empty:
        return []
    grid = sns.relplot(data=s, x="x", y="y", col="optimizer", col_wrap=6, s=4, linewidth=0, alpha=0.6,
                       height=2.0, aspect=1.0)
    grid.set_titles("{col_name}")
    if "plane" in figure:
        for ax in grid.axes.flat:
            plane_layers(ax, figure["plane"])
    marks = "; red crosses: " + ", ".join(sorted({p["label"] for p in figure.get("plane", {}).get("points", [])}))
    grid.figure.suptitle(f"{task}: {s.groupby('optimizer').size().iloc[0]} generated points at the end "
                         f"of the first final seed{marks if 'plane' in figure else ''}", y=1.02)
    return [f"![samples {task}]({save(grid.figure, out, f'samples-{task}')})", ""]


def printed_lines(runs: pd.DataFrame, curves: pd.DataFrame, task: str, figure: dict) -> list[str]:
    """A published trajectory (figures.json "printed") beside the first final seed's."""
    printed = figure.get("printed")
    if not printed:
        return []
    opt, series = printed["optimizer"], printed["series"]
    c = curves[(curves.task == task) & (curves.optimizer == opt) & (curves.series == series)]
    if c.empty:
        return []
    ours = c[c.seed == c.seed.min()].set_index("step").value
    lr = runs[(runs.task == task) & (runs.optimizer == opt)].lr.iloc[0]
    rows = [{"step": int(step), f"{printed['source']} prints {series}": fmt(x, 5),
             f"ours ({opt}, lr {lr:g}): {series}": fmt(float(ours[int(step)]), 5) if int(step) in ours else "–"}
            for step, x in sorted(printed["values"].items(), key=lambda kv: int(kv[0]))]
    return [printed["note"], "", md_table(pd.DataFrame(rows)), ""]


def rank_table(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    direction = runs.groupby("task")["direction"].first()
    ranks = {}
    for task, g in summary.groupby("task"):
        sign = 1 if direction[task] == "min" else -1
        ranks[task] = (g.set_index("optimizer")["_mean"] * sign).rank(method="min", na_option="bottom")
    r = pd.DataFrame(ranks)
    r["mean rank"] = r.mean(axis=1)
    r = r.sort_values("mean rank").reset_index().rename(columns={"index": "optimizer"})
    return r.map(lambda x: fmt(x, 3) if isinstance(x, float) else x)


def profile_figure(runs: pd.DataFrame, out: Path) -> str | None:
    steps = runs.assign(cost=runs["steps_to_target"].fillna(np.inf))
    costs = steps.groupby(["task", "optimizer"])["cost"].median().unstack("optimizer")
    if costs.shape[0] < 2:
        return None
    taus = np.logspace(0, 2, 60)
    rho = stats.performance_profile(costs, taus)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for opt in rho.columns:
        ax.step(rho.index, rho[opt], where="post", label=opt)
    ax.set_xscale("log")
    ax.set_xlabel("τ (steps to target within a factor τ of the best)")
    ax.set_ylabel("share of tasks")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Performance profile (Dolan–Moré) on steps to target")
    return save(fig, out, "performance-profile")


def stability_section(st: pd.DataFrame, out: Path) -> list[str]:
    lines = ["## Stability: loss × c against learning rate × c", "",
             "At the tuned learning rate, one sweep multiplies the loss by c (lr fixed), the other the "
             "learning rate by c (loss fixed). *Stable* counts the decades of c over which the run did not "
             "diverge; *invariant* counts those over which the loss curve stayed within 1e-3 (relative) of "
             "the c = 1 curve. *loss×c ≡ lr×c* is the largest relative gap between the two sweeps' loss "
             "curves at the same c: 0 for SGD, whose update is linear in the gradient.", ""]
    rows = []
    for (task, opt, axis), g in st.groupby(["task", "optimizer", "axis"]):
        rows.append({"task": task, "optimizer": opt, "axis": f"{axis} × c",
                     "stable (decades)": fmt(stats.stable_decades(g.scale, ~g.diverged), 3),
                     "invariant (decades)": fmt(stats.stable_decades(g.scale, g.gap_to_unscaled < 1e-3), 3),
                     "loss×c ≡ lr×c (max gap)": fmt(float(g.gap_to_lr_scaled.max()), 2) if axis == "loss" else ""})
    lines += [md_table(pd.DataFrame(rows)), ""]
    for task, g in st.groupby("task"):
        g = g.assign(**{"final metric": g.final_metric.where(~g.diverged)})
        grid = sns.relplot(data=g, x="scale", y="final metric", hue="optimizer", col="axis", kind="line",
                           marker="o", height=3.4, aspect=1.3, facet_kws={"sharey": True})
        grid.set(xscale="log")
        if (g["final metric"].dropna() > 0).all():
            grid.set(yscale="log")
        grid.figure.suptitle(f"{task}: final metric against c (gaps: diverged)", y=1.03)
        lines += [f"![stability {task}]({save(grid.figure, out, f'stability-{task}')})", ""]
    return lines


def loop_options_section(lo: pd.DataFrame) -> list[str]:
    tab = lo.assign(**{
        "step (ms)": (lo.median_step_seconds * 1e3).map(lambda x: fmt(x, 3)),
        "× plain": lo.ratio_to_plain.map(lambda x: fmt(x, 3)),
        "activations (MB)": (lo.activation_bytes / 1e6).map(lambda x: fmt(x, 3)),
        "peak device memory (MB)": (lo.peak_memory_bytes / 1e6).map(lambda x: fmt(x, 4) if x == x else "– (CPU)"),
        "loss gap to plain": lo.max_loss_gap_to_plain.map(lambda x: fmt(x, 2)),
    })[["task", "optimizer", "option", "step (ms)", "× plain", "activations (MB)", "peak device memory (MB)",
        "loss gap to plain"]]
    return ["## Training-loop options", "",
            "Each option of the harness against the plain loop on the same task, optimizer and seed, "
            "in alternating rounds: time per training step (forward, backward, step; a round's mean, "
            "the median over rounds), the bytes autograd keeps for backward from one forward (one "
            "micro-batch under accumulation; outside the recomputed blocks under activation "
            "checkpointing), peak device memory on CUDA, and the largest relative gap between the "
            "option's loss curve and the plain one: 0 where the option leaves the maths alone "
            "(checkpointing recomputes the same values), float rounding for accumulation (the mean "
            "of micro-batch gradients is the batch gradient), a change for the schedule, and for "
            "clipping where it binds. The monitor's row is its overhead (goal: under 3 %).", "",
            md_table(tab), ""]


def monitor_section(mon: pd.DataFrame, out: Path) -> list[str]:
    lines = ["## Training monitor", "",
             "Every few steps of the final runs: gradient norm, update norm ‖θₜ − θₜ₋₁‖ over weight norm, "
             "and the mean |first moment| where the optimizer keeps one (mean over parameter groups and "
             "seeds).", ""]
    cols = {"grad_norm": "gradient norm", "update_to_weight": "update / weight", "m_abs_mean": "mean |m|"}
    for task, g in mon.groupby("task"):
        per_step = g.groupby(["optimizer", "seed", "step"])[list(cols)].mean().reset_index()
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
        for ax, (col, title) in zip(axes, cols.items()):
            d = per_step.dropna(subset=[col])
            if len(d):
                sns.lineplot(data=d, x="step", y=col, hue="optimizer", errorbar=None, ax=ax, linewidth=1)
                if (d[col] > 0).all():
                    ax.set_yscale("log")
            ax.set_title(f"{task}: {title}")
            ax.set_ylabel(title)
            if ax.get_legend() and ax is not axes[-1]:
                ax.get_legend().remove()
        lines += [f"![monitor {task}]({save(fig, out, f'monitor-{task}')})", ""]
    if {"m_from", "v_from"} <= set(mon.columns):
        # what each optimizer's moment statistics are read from, or why it has none
        src = (mon.groupby("optimizer")[["m_from", "v_from"]].agg(lambda s: " / ".join(sorted(set(map(str, s.dropna())))))
               .reset_index().rename(columns={"m_from": "first moment from",
                                              "v_from": "second moment from"}))
        lines += ["Where each optimizer's moment statistics come from (its own state, dequantised or "
                  "reconstructed where needed), or why it has none:", "", md_table(src), ""]
    return lines


def routing_section(routing: pd.DataFrame) -> list[str]:
    """Which optimizer updates which parameters, and which of them decay (one seed per pair: the
    routing depends on the model and the entry, not the seed)."""
    first = routing[routing.seed == routing.groupby(["task", "optimizer"]).seed.transform("min")]
    rows = []
    for (task, opt), g in first.groupby(["task", "optimizer"], sort=True):
        parts = [f"{r.part}{' (fallback)' if r.fallback else ''}: {int(r.tensors)} tensors, {int(r.numel)} params, "
                 f"lr {fmt(r.lr, 3)}, decay {fmt(r.weight_decay, 3) if pd.notna(r.weight_decay) else 'none'}"
                 for r in g.itertuples()]
        rows.append({"task": task, "optimizer": opt, "policy": g.decay.iloc[0], "groups": " · ".join(parts)})
    return ["## Parameter groups", "",
            "Weight decay reaches tensors of two or more dimensions (weights and embeddings, as nanoGPT "
            "does); biases, norm gains and scalars get none, in every part of an entry (Muon's and "
            "Shampoo's fallback too). An entry or a task can choose `all` instead. Each row: the "
            "optimizer that updates a group, its tensors and parameters, its peak lr (before the "
            "schedule) and its weight decay, from the first final seed.", "",
            "<details><summary>Routing of every task × optimizer</summary>", "",
            md_table(pd.DataFrame(rows)), "", "</details>", ""]


def memory_section(mm: pd.DataFrame) -> list[str]:
    """The large-model table from the registry's analytic models (written by the aggregate job)."""
    total = mm.groupby(["size", "optimizer"])["GB"].sum().unstack("size")
    total.columns = [f"{c / 1e9:g}B" if c >= 1e9 else f"{c / 1e6:g}M" for c in total.columns]
    total = total.reset_index().map(lambda x: fmt(x, 4) if isinstance(x, float) else x)
    return ["## Memory of large models", "",
            "Training memory in GB (1e9 B) for the profile's optimizers at 125M, 1.3B, 7B and 70B "
            "parameters, mixed precision: fp16/bf16 parameters and gradients, the optimizer state as "
            "the registry's memory model gives it (fp32 moments; 8-bit entries quantised), and fp32 "
            "master weights. Seed 001's 70B table (140 + 140 + 280 + 280 = 840 GB for Adam) leaves out "
            "the master weights (another 280 GB), activations, temporary buffers and fragmentation. "
            "`optbench memory --params 70e9` prints the breakdown.", "", md_table(total), ""]


def schedule_ablation_section(runs: pd.DataFrame) -> list[str]:
    """Tasks that are the same problem (the data hashes of every seed, and the model's size) run under different
    schedules: the schedule ablation, per optimizer each at its own tuned hyperparameters. A task's
    schedule is its runs' most common one (an entry that takes none, schedule-free, runs constant
    inside any task)."""
    if "schedule" not in runs:
        return []
    lines = []
    for _, g in runs.groupby(["task_family", "metric", "n_params"]):
        schedule = {t: h.schedule.mode().iloc[0] for t, h in g.groupby("task")}
        # the same problem: every seed's data hash equal between the tasks (a hash covers its seed)
        same_data = len({frozenset(h.data_hash) for _, h in g.groupby("task")}) == 1
        if len(set(schedule.values())) < 2 or not same_data:
            continue
        rows = []
        for opt, h in g.groupby("optimizer"):
            row = {"optimizer": opt}
            for task in sorted(schedule):
                ok = h[(h.task == task) & ~h.diverged]
                mean, lo, hi = stats.bootstrap_ci(ok.final_metric.tolist())
                row[f"{task} ({schedule[task]})"] = f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]" if len(ok) else "–"
            if all(v != "–" for k, v in row.items() if k != "optimizer"):
                rows.append(row)
        direction = "lower" if g.direction.iloc[0] == "min" else "higher"
        lines += [f"Final {g.metric.iloc[0]} ({direction} is better; 95 % CI over the final seeds), each "
                  "schedule tuned separately with the same budget:", "", md_table(pd.DataFrame(rows)), ""]
    if not lines:
        return []
    return ["## Schedule ablation", "",
            "The profile's schedule against a constant learning rate on the same problem (same data hash and "
            "model), every optimizer tuned for each schedule with the same trials and seeds.", ""] + lines


def defaults_section(defaults: pd.DataFrame, tuned: pd.DataFrame) -> list[str]:
    """The self-tuning track beside the tuned runs: what tuning buys each optimizer."""
    lines = ["## Self-tuning track: library defaults, no tuning", "",
             "AlgoPerf's self-tuning track: every optimizer at its entry's defaults (the library's or "
             "the paper's, stated in `optbench list optimizers`; learning-rate-free methods at lr 1.0) "
             "and the task's (the GAN's β), over the same final seeds, with no tuning at all. *Tuning "
             "buys* is the tuned mean minus the defaults' mean, signed so that positive is better; "
             "`–` where either side diverged on every seed. Crowded Valley (Schmidt et al. 2021) found "
             "that trying several optimizers at their defaults does about as well as tuning one: "
             "compare the best row of each column per task.", ""]
    for task, d in defaults.groupby("task"):
        sign = 1 if d["direction"].iloc[0] == "min" else -1
        metric = d["metric"].iloc[0]
        rows = []
        for opt, g in d.groupby("optimizer"):
            ok = g[~g["diverged"]]
            mean, lo, hi = stats.bootstrap_ci(ok["final_metric"].tolist())
            tg = tuned[(tuned.task == task) & (tuned.optimizer == opt)]
            tmean, tlo, thi = stats.bootstrap_ci(tg[~tg["diverged"]]["final_metric"].tolist())
            reached = g["steps_to_target"].dropna()
            rows.append({"optimizer": opt, "default lr": fmt(float(g["lr"].iloc[0]), 3),
                         f"defaults: final {metric} (95% CI)": f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]",
                         "diverged": f"{int(g['diverged'].sum())}/{len(g)}",
                         "reached target": f"{len(reached)}/{len(g)}",
                         f"tuned: final {metric} (95% CI)": f"{fmt(tmean)} [{fmt(tlo)}, {fmt(thi)}]" if len(tg) else "not run",
                         "tuning buys": fmt(sign * (mean - tmean), 3) if len(tg) else "–"})
        lines += [f"### `{task}`", "", md_table(pd.DataFrame(rows)), ""]
    return lines


def environment_block(env: dict) -> list[str]:
    if not env:
        return ["_no environment recorded_"]
    pk = env.get("packages", {})
    lines = ["| | |", "|---|---|"]
    for key in ("device", "device_name", "device_capability", "device_memory_bytes", "cuda", "cudnn", "cpu",
                "cpu_flags", "cpu_capability", "cpu_count", "threads", "platform", "python", "torch",
                "git_commit", "compute_seconds"):
        if env.get(key) is not None:
            lines.append(f"| {key} | {env[key]} |")
    lines.append("| packages | " + ", ".join(f"{k} {v}" for k, v in sorted(pk.items())) + " |")
    return lines


def write_report(tables_dir, out_dir) -> Path:
    tables_dir, out = Path(tables_dir), Path(out_dir)
    shutil.rmtree(out / "figures", ignore_errors=True)   # no figure outlives the tables it came from
    out.mkdir(parents=True, exist_ok=True)
    t = read_tables(tables_dir)
    if "track" in t["runs"]:   # the self-tuning track's runs have a section of their own
        t["defaults"] = t["runs"][t["runs"].track == "defaults"]
        t["runs"] = t["runs"][t["runs"].track != "defaults"]
    runs, curves, tuning, st, steptime = t["runs"], t["curves"], t["tuning"], t["stability"], t["steptime"]
    profile = out.name
    lines = [f"# optbench report: `{profile}` profile", "",
             f"Generated from `results/tables/{profile}/` alone (CSV files beside the figures). Each "
             "final run uses the hyperparameters selected by the tuning sweep (see Tuning) on seeds disjoint "
             "from the final seeds, under the profile's schedule; confidence intervals are 95 % percentile bootstraps of the mean over "
             "non-diverged seeds; diverged runs are counted, not dropped.", "",
             "## Environment", ""] + environment_block(t["environment"]) + [""]
    if runs.empty:
        lines += ["_No final runs in the tables._"]
    else:
        summary = summary_table(runs, tuning, steptime)
        lines += ["## Claims", "",
                  "The seed notes' claims, and those of the studies below (mixed precision, QK-clip, "
                  "scale), each checked against this profile's runs at this scale: `reproduced`, `not "
                  "reproduced`, `inconclusive` (confidence intervals overlap) or `not measured`.", "",
                  md_table(claims.table(t)), ""]
        lines += ["## Across tasks", ""]
        fig = profile_figure(runs, out)
        if fig:
            lines += [f"![performance profile]({fig})", ""]
        lines += ["Rank of each optimizer's mean final metric per task (1 = best):", "",
                  md_table(rank_table(summary, runs)), "",
                  f"In the per-task tables, *step / {baseline_name(steptime)}* is the step-time section's same-job ratio "
                  "where it measured the pair, otherwise (≈) the ratio of median step times in the "
                  "final runs, which ran in separate jobs.", ""]
        for task, g in summary.groupby("task"):
            r = runs[runs.task == task]
            metric, direction, target = r["metric"].iloc[0], r["direction"].iloc[0], r["target"].iloc[0]
            better = "lower" if direction == "min" else "higher"
            lines += [f"## Task `{task}`", "",
                      f"Metric: {metric} ({better} is better), target {fmt(float(target))}; "
                      f"{int(r['n_params'].iloc[0])} parameters; data hash `{r['data_hash'].iloc[0]}`; "
                      f"{len(r.seed.unique())} seeds.", "",
                      # a task's table has its own metric's column; the others are empty here
                      md_table(g.drop(columns=["task", "_mean"]).dropna(axis=1, how="all")), "",
                      f"![curves {task}]({curves_figure(curves, task, metric, out)})", ""]
            lines += extras_lines(curves, task, metric, out)
            figure = t["figures"].get(task, {})
            lines += trajectory_lines(curves, task, figure, out)
            lines += samples_lines(t["samples"], task, figure, out)
            lines += printed_lines(runs, curves, task, figure)
    study = studies.qk_section(t, out) + studies.scale_section(t, out)
    if study:
        lines += ["## LM studies: MuonClip where QK-clip acts, and scale", ""] + study
    lines += schedule_ablation_section(runs)
    if len(t.get("defaults", [])):
        lines += defaults_section(t["defaults"], runs)
    if len(t["skipped"]):
        lines += ["## Pairs not run", "", md_table(t["skipped"]), ""]
    if len(tuning):
        lines += tuning_report.section(t, out)
    if len(st):
        lines += stability_section(st, out)
    if len(t["precision"]):
        lines += precision.section(t, out)
    if len(steptime):
        base = baseline_name(steptime)
        tab = steptime.assign(**{
            "median (µs)": (steptime.median_seconds * 1e6).map(lambda x: fmt(x, 3)),
            "p10–p90 (µs)": [f"{fmt(a * 1e6, 3)}–{fmt(b * 1e6, 3)}" for a, b in zip(steptime.p10_seconds, steptime.p90_seconds)],
            f"{base} (µs)": (steptime.baseline_median_seconds * 1e6).map(lambda x: fmt(x, 3)),
            f"ratio to {base}": steptime.ratio_to_baseline.map(lambda x: fmt(x, 3)),
            "% of roofline": steptime.percent_of_floor.map(lambda x: fmt(x, 3)),
        })[["task", "optimizer", "n_params", "median (µs)", "p10–p90 (µs)", f"{base} (µs)", f"ratio to {base}",
            "% of roofline"]]
        bw = ", ".join(f"{fmt(x, 3)}" for x in sorted(steptime.bandwidth_GBps.round(1).unique())[:1])
        lines += ["## Step time", "", "`optimizer.step()` alone on fixed gradients, after warm-up, "
                  f"interleaved with {base} in the same job (machines are noisy; the ratio holds). "
                  "*% of roofline*: the time floor (bytes the step must move: read p and g, write p, read "
                  "and write every state tensor; over the bandwidth of an in-place add measured in the "
                  f"same job, e.g. {bw} GB/s) as a share of the measured step. Steps that compute "
                  "(Newton–Schulz, matrix roots, factored moments) or make several passes sit far below "
                  "100 %.", "",
                  md_table(tab), ""]
    if len(t["loop_options"]):
        lines += loop_options_section(t["loop_options"])
    if len(t["monitor"]):
        lines += monitor_section(t["monitor"], out)
    if len(runs):
        mem = runs.groupby(["task", "optimizer"]).agg(
            params=("n_params", "first"), measured=("state_bytes", "first"),
            model=("state_bytes_model", "first"), per_param=("state_bytes_per_param", "first")).reset_index()
        mem["matches model"] = np.where(mem.measured == mem.model, "yes", "NO")
        mem["per_param"] = mem["per_param"].map(lambda x: fmt(x, 4))
        lines += ["## Optimizer state memory", "", "Exact bytes of every state tensor (shared storage "
                  "counted once) after the run, beside the registry's analytic model.", "", md_table(mem), ""]
    if len(t["memory_model"]):
        lines += memory_section(t["memory_model"])
    if len(t["routing"]):
        lines += routing_section(t["routing"])
    if len(t["cost"]):
        lines += cost.section(t, out)
    path = out / "README.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
