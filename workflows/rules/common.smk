# Validation before any job runs, wildcard constraints, and input functions.
import os
import re
import sys

import optimizers
import tasks
from workflows.engine import config as profile_config
from workflows.engine import cost, pairs, plan, preflight

# Every error of a config is found here, before any job runs, naming the key and the bad value;
# `optbench plan` runs the same check (workflows.engine.config.load). The message alone, exit 1:
# raised, Snakemake would print it with the frames of the checker.
try:
    profile_config.check(config, workflow.overwrite_configfiles, list(workflow.config_settings.config or {}))
except profile_config.ConfigError as e:
    print(f"optbench: {e}", file=sys.stderr)
    sys.exit(1)


def device_preflight():
    """The Snakefile's onstart, before any job: the profile's device exists on this machine, or one
    line says why and the run ends (exit 1, no job run, no record written). Snakemake calls no
    onstart in a dry run (`-n` plans a CUDA profile anywhere), nor in the per-job processes it
    spawns (`--no-hooks`). It checks only what runs here and needs the device: nothing under
    --touch, nothing under a cluster executor (the jobs run on other machines, each job's harness
    checks its own device), and not when only device-free jobs (aggregate, report) are left."""
    if workflow.touch or not workflow.local_exec:
        return
    rules_ = sorted({job.rule.name for job in workflow.dag.needrun_jobs() if job.resources.get("gpu", 0)})
    if not rules_:
        return
    files = ", ".join(map(str, workflow.overwrite_configfiles)) or "the default profile"
    why = preflight.refusal(config["device"], f"config device {config['device']!r} ({files})",
                            instead="a cpu profile, e.g. --configfile workflows/config/cpu.yaml, or --config device=cpu")
    if why:
        print(f"optbench: {why}. Refused before any job; the rules that need the device: {', '.join(rules_)}",
              file=sys.stderr)
        sys.exit(1)   # not an exception: Snakemake would print it with its frame; the lock is released alike

PROFILE = config["profile"]
RUNS = f"results/runs/{PROFILE}"
TABLES = f"results/tables/{PROFILE}"
LOGS = f"logs/{PROFILE}"
BENCHMARKS = f"results/benchmarks/{PROFILE}"   # one TSV a job: wall, CPU time, peak memory
GPU = 1 if config["device"].startswith("cuda") else 0


wildcard_constraints:
    task="|".join(map(re.escape, config["tasks"])),
    optimizer="|".join(map(re.escape, optimizers.names())),
    seed=r"\d+",


def sources(w):
    """The files that define this job's task and optimizer: editing one reruns only its jobs."""
    found = [os.path.relpath(optimizers.source(w.optimizer))]
    spec = optimizers.get(w.optimizer)
    if spec.fallback:
        found.append(os.path.relpath(optimizers.source(spec.fallback)))
    found.append(os.path.relpath(tasks.source(w.task)))
    return found


def optimizers_for(task):
    return pairs.optimizers_for(config, task)


SKIPPED = [(t, o, why) for t in config["tasks"] for o in optimizers_for(t)
           if (why := pairs.compatible(t, optimizers.get(o)))]


def tune_summary(w):
    return f"{RUNS}/tune/{w.task}/{w.optimizer}.json"


from workflows.engine import measurements, records


def measurement_records(name, task="{task}", optimizer="{optimizer}"):
    """The records one job of measurement `name` writes (records.record_path), one a final seed for
    a per-seed measurement; with the default wildcards, the rule's output pattern."""
    if measurements.get(name).per_seed:
        return [records.record_path(RUNS, name, task, optimizer, s) for s in config["final_seeds"]]
    return [records.record_path(RUNS, name, task, optimizer)]
