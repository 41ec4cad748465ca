"""What a profile cost: Snakemake's per-job benchmark files and the profile's invocations, as rows.

Every rule has a `benchmark:` file, results/benchmarks/<profile>/<rule>/<task>/<optimizer>.tsv
(aggregate and report: <rule>.tsv), one header line and one row: wall seconds `s`, `cpu_time`
(user + system seconds of the job's process tree), `max_rss` (MB) and more. Snakemake records no
total wall time, so the Snakefile's onstart / onsuccess / onerror handlers append one JSON line per
event to invocations.jsonl (`mark_invocation`); `invocation_rows` pairs them. The profile's wall
time is the union of the invocations' intervals (`wall_seconds`): shards (OPTBENCH_SHARD=i/n) run
several invocations at once, and their overlap is one stretch of wall time, not several.

Core utilisation = busy core-seconds / the invocations' summed wall × cores, with busy core-seconds
the jobs' summed `cpu_time`: a job reserving two cores and using one counts as one busy core. The longest chain is
the longest path of the measurement jobs in measured wall seconds: per task × optimizer, tune then
the longest of the rules that read its selection (final, stability). The cost tables are written
inside the aggregate job, before its own benchmark file and the report's exist, so they hold the
measurement jobs only (the `jobs` of `write_tables`) and the chain ends before the aggregation.
The standard library only (longest_chain and write_tables import the measurements and the plan):
the Snakefile imports this at every start.
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

EVENTS = ("start", "success", "error")


def mark_invocation(benchmarks_dir, event: str, cores: int) -> Path:
    """Appends {event, time, cores, pid} to <benchmarks_dir>/invocations.jsonl (one short append:
    a killed Snakemake leaves whole lines behind)."""
    if event not in EVENTS:
        raise ValueError(f"invocation event {event!r}; valid: {', '.join(EVENTS)}")
    path = Path(benchmarks_dir) / "invocations.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"event": event, "time": time.time(), "cores": cores, "pid": os.getpid()})
    with open(path, "a") as f:
        f.write(line + "\n")
    return path


def invocation_rows(path, now: float | None = None) -> list[dict]:
    """One row per invocation, in order of start: start, end, wall seconds, cores, status. An end
    event closes its own process's open start (shards run several invocations at once, so events
    interleave). An invocation still running (the one aggregating: the last to start) ends `now`;
    one killed before its handler ran ("killed") ends at the next invocation's start at the latest,
    and is counted up to there (with shards started together, a killed one among them is counted
    only up to the next shard's start)."""
    path = Path(path)
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]
    rows = []
    for e in events:
        if e["event"] == "start":
            rows.append({"start": e["time"], "end": None, "cores": e["cores"], "status": "running", "pid": e["pid"]})
            continue
        open_rows = [r for r in rows if r["end"] is None and r["pid"] == e["pid"]]
        if open_rows:
            open_rows[-1].update(end=e["time"], status=e["event"])
    rows.sort(key=lambda r: r["start"])
    now = time.time() if now is None else now
    for row, after in zip(rows, rows[1:] + [None]):
        if row["end"] is None:
            row["status"] = "running" if after is None else "killed"
            row["end"] = now if after is None else after["start"]
        row["wall_seconds"] = row["end"] - row["start"]
        del row["pid"]
    return rows


def wall_seconds(invocations: list[dict]) -> float:
    """The profile's wall time: the union of its invocations' intervals, so that invocations that
    ran at once (shards: OPTBENCH_SHARD=i/n) are counted once, and the time between two
    invocations not at all."""
    total, reach = 0.0, float("-inf")
    for i in sorted(invocations, key=lambda i: i["start"]):
        if i["end"] > reach:
            total += i["end"] - max(i["start"], reach)
            reach = i["end"]
    return total


def benchmark_path(benchmarks_dir, rule: str, task: str, optimizer: str) -> Path:
    """A measurement job's benchmark file (the rules' `benchmark:`)."""
    return Path(benchmarks_dir) / rule / task / f"{optimizer}.tsv"


def _job(path: Path, benchmarks_dir: Path) -> dict:
    rule, task, optimizer = path.relative_to(benchmarks_dir).with_suffix("").parts
    return {"rule": rule, "task": task, "optimizer": optimizer}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:   # Snakemake writes NA for what it could not measure
        return float("nan")


def benchmark_rows(paths, benchmarks_dir) -> list[dict]:
    """One row per benchmark file that exists: rule, task, optimizer, wall `s`, `cpu_time`,
    `max_rss` (MB), `mean_load` (Snakemake's CPU percent over the job), and the file's `end` time
    (its mtime: Snakemake writes it as the job ends)."""
    benchmarks_dir = Path(benchmarks_dir)
    rows = []
    for path in map(Path, paths):
        if not path.exists():
            continue
        with open(path, newline="") as f:
            lines = list(csv.DictReader(f, delimiter="\t"))
        if not lines:
            continue
        last = lines[-1]   # --benchmark-repeats writes one line a repeat; the pipeline runs one
        rows.append({**_job(path, benchmarks_dir), "s": _number(last["s"]), "cpu_time": _number(last["cpu_time"]),
                     "max_rss": _number(last["max_rss"]), "mean_load": _number(last["mean_load"]),
                     "end": path.stat().st_mtime})
    return rows


def longest_chain(rows: list[dict]) -> dict:
    """The measurement jobs' longest path in measured seconds: {"seconds", "jobs"} (jobs as
    rule:task/optimizer). A pair's chain is the tune job whose selection it reads (its own, or the
    pair `tune.selection_source` names) then the longest job that reads it; any other job is a
    chain of its own."""
    from workflows.engine import measurements
    from workflows.engine.measurements.tune import selection_source
    after = {m.name for m in measurements.table() if m.reads_selection}
    by_job = {(r["rule"], r["task"], r["optimizer"]): r["s"] for r in rows}
    chains = []
    for (rule, task, optimizer), s in by_job.items():
        src = selection_source(task, optimizer)
        if rule in after and (measurements.SELECTION, *src) in by_job:
            chains.append((by_job[(measurements.SELECTION, *src)] + s,
                           [f"{measurements.SELECTION}:{src[0]}/{src[1]}", f"{rule}:{task}/{optimizer}"]))
        else:
            chains.append((s, [f"{rule}:{task}/{optimizer}"]))
    seconds, jobs = max(chains, default=(0.0, []))
    return {"seconds": seconds, "jobs": jobs}


def summary_cores(invocations: list[dict]) -> int:
    """The most cores the invocations held at once: the widest invocation's, or, where invocations
    overlapped (shards, each given a share of the host's cores), the sum of those running together."""
    edges = sorted([(i["start"], 1, i["cores"]) for i in invocations]
                   + [(i["end"], 0, -i["cores"]) for i in invocations])
    held = peak = 0
    for _, _, change in edges:   # at a tie an end comes first: back-to-back invocations do not add up
        held += change
        peak = max(peak, held)
    return peak or 1


def utilisation(rows: list[dict], invocations: list[dict]) -> dict:
    """Busy core-seconds (summed cpu_time), wall seconds (`wall_seconds`: overlaps once), cores
    (`summary_cores`), and core utilisation: busy over the invocations' summed wall × cores (the
    capacity: overlapping invocations each had their own share of the cores)."""
    busy = sum(r["cpu_time"] for r in rows if r["cpu_time"] == r["cpu_time"])
    capacity = sum(i["wall_seconds"] * i["cores"] for i in invocations)
    return {"busy_core_seconds": busy, "wall_seconds": wall_seconds(invocations),
            "cores": summary_cores(invocations) if invocations else 0,
            "core_utilisation": busy / capacity if capacity else float("nan")}


TABLES = ("cost.csv", "cost_summary.csv", "plan.csv")
PLAN_COLUMNS = ("rule", "task", "jobs", "runs", "steps", "flops_per_step", "bytes_per_step", "estimated_seconds")


def _write_csv(path: Path, rows: list[dict], columns) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_tables(jobs, benchmarks_dir, out_dir, plan_rows: list[dict], threads: int,
                 now: float | None = None) -> list[Path]:
    """The cost tables from the benchmark files of `jobs` ((rule, task, optimizer) of this profile:
    files of jobs no longer in it are left out) and the invocations:
    - cost.csv: one row per job: rule, task, optimizer, s, cpu_time, max_rss, mean_load;
    - cost_summary.csv: one row: wall_seconds (the invocations' union), cores (the most held at
      once), busy_core_seconds, core_utilisation (busy over the invocations' wall × cores; busy is
      the benchmark's sampled cpu_time, a lower bound), held_core_seconds, core_occupancy (the
      jobs' wall time × the cores they held, over the same capacity), invocations,
      longest_chain_seconds, longest_chain (jobs joined by " -> "), planned_wall_seconds;
    - plan.csv: `PLAN_COLUMNS`, one row per rule and task (workflows.engine.plan.plan_rows); its wall
      time on the cores the invocations had, jobs holding `threads` cores (timing jobs: all)."""
    from workflows.engine import plan
    benchmarks_dir, out_dir = Path(benchmarks_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [benchmark_path(benchmarks_dir, *job) for job in jobs]
    rows = benchmark_rows(paths, benchmarks_dir)
    invocations = invocation_rows(benchmarks_dir / "invocations.jsonl", now)
    chain = longest_chain(rows)
    cores = summary_cores(invocations)
    # the cores the jobs held for their wall time, over the capacity: how well the jobs were packed
    # (Snakemake's cpu_time samples a job every 30 s after its first 15 s, so it misses up to 30 s
    # of each long job's CPU time: busy_core_seconds is a lower bound)
    held = sum(r["s"] * plan.held_cores(r["rule"], threads, cores) for r in rows if r["s"] == r["s"])
    capacity = sum(i["wall_seconds"] * i["cores"] for i in invocations)
    summary = {**utilisation(rows, invocations), "held_core_seconds": held,
               "core_occupancy": held / capacity if capacity else float("nan"), "invocations": len(invocations),
               "longest_chain_seconds": chain["seconds"], "longest_chain": " -> ".join(chain["jobs"]),
               "planned_wall_seconds": plan.wall_seconds(plan_rows, threads, cores)}
    written = [out_dir / name for name in TABLES]
    _write_csv(written[0], rows, ("rule", "task", "optimizer", "s", "cpu_time", "max_rss", "mean_load"))
    _write_csv(written[1], [summary], summary)
    _write_csv(written[2], plan_rows, PLAN_COLUMNS)
    return written
