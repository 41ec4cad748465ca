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


# One Snakemake a GPU: OPTBENCH_SHARD=i/n with the target `shard` trains the i-th of n disjoint shares
# of the profile's pairs (workflows.engine.plan.shard_jobs) and writes their records only, no tables
# or report, so that n instances (CUDA_VISIBLE_DEVICES=0, 1, ...) run at once in one directory without
# a shared output (Snakemake's lock refuses none of them); afterwards one run of the same command
# without the variable and target finds every record up to date and aggregates them all.
try:
    SHARD = plan.shard_spec(os.environ.get(plan.SHARD_VARIABLE))
except ValueError as e:
    print(f"optbench: {e}", file=sys.stderr)
    sys.exit(1)


def shard_records(w=None):
    """The records of this run's shard: every record of the profile where OPTBENCH_SHARD is unset."""
    return [path for job in plan.shard_jobs(RUN_JOBS, SHARD) for path in measurement_records(*job)]


def shard_preflight():
    """Under OPTBENCH_SHARD, only the shard's own jobs run: a run that would run another (the default
    target's aggregation and report, another shard's pairs) is refused before any job, naming them."""
    if SHARD is None:
        return
    own = set(plan.shard_jobs(RUN_JOBS, SHARD))
    other = sorted({job.rule.name for job in workflow.dag.needrun_jobs() if job.rule.name != "shard"
                    and (job.rule.name, job.wildcards.get("task"), job.wildcards.get("optimizer")) not in own})
    if other:
        print(f"optbench: {plan.SHARD_VARIABLE}={SHARD[0]}/{SHARD[1]} runs its share of the pairs only: name the "
              f"target `shard` (and aggregate afterwards without the variable); this run would also run: "
              f"{', '.join(other)}. Refused before any job", file=sys.stderr)
        sys.exit(1)


def device_preflight():
    """The Snakefile's onstart, before any job: the profile's device exists on this machine, or one
    line says why and the run ends (exit 1, no job run, no record written). Snakemake calls no
    onstart in a dry run (`-n` plans a CUDA profile anywhere), nor in the per-job processes it
    spawns (`--no-hooks`). It checks only what runs here and needs the device: nothing under
    --touch, nothing under a cluster executor (the jobs run on other machines, each job's harness
    checks its own device), and not when only device-free jobs (aggregate, report) are left. A
    shard's run is checked first (`shard_preflight`)."""
    shard_preflight()
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
# The report's name (workflows.engine.config.report_name): the profile's own when the configuration is
# its file's, else a derived one, so that an override never rewrites the published report and tables
# (report/<profile>/, results/tables/<profile>/); the records in RUNS are shared, per job.
PROFILE_CONFIG, PROFILE_SOURCE = profile_config.baseline(config, workflow.overwrite_configfiles)
REPORT = profile_config.report_name(config, PROFILE_CONFIG)
OVERRIDES = profile_config.override_rows(config, PROFILE_CONFIG, PROFILE_SOURCE)
if OVERRIDES:
    print(f"optbench: this configuration differs from {PROFILE_SOURCE} in "
          f"{', '.join(row['key'] for row in OVERRIDES)}: its report goes to report/{REPORT}/ and "
          f"results/tables/{REPORT}/, not the profile's own (records shared in {RUNS}/)", file=sys.stderr)
TABLES = f"results/tables/{REPORT}"
LOGS = f"logs/{PROFILE}"
BENCHMARKS = f"results/benchmarks/{PROFILE}"   # one TSV a job: wall, CPU time, peak memory
GPU = 1 if config["device"].startswith("cuda") else 0
# The GPU pool: how many training jobs share the GPU (`resources: gpu: N`, workflows/profiles/gpu).
# A timing job asks for the whole pool, so it runs with the device to itself; every job is told, in
# OPTBENCH_JOBS_PER_DEVICE (at most this many shared), so that its records say so. None: no pool set.
GPU_POOL = workflow.global_resources.get("gpu").value if GPU else None
TIMING_GPU = GPU_POOL or GPU
# The run's device settings (RunConfig.fp32_precision, .deterministic), and the sharing, as params
# only where they differ from the defaults: a profile at the defaults keeps its params (no rerun).
from workflows.engine.harness import DEVICE_DEFAULTS
DEVICE_PARAMS = {k: config[k] for k, default in DEVICE_DEFAULTS.items() if config.get(k, default) != default}
SHARED_PARAMS = {**DEVICE_PARAMS, **({"jobs_per_device": GPU_POOL} if GPU_POOL else {})}
TIMING_PARAMS = {**DEVICE_PARAMS, **({"jobs_per_device": 1} if GPU_POOL else {})}


wildcard_constraints:
    task="|".join(map(re.escape, config["tasks"])),
    optimizer="|".join(map(re.escape, optimizers.names())),
    seed=r"\d+",


rule shard:
    input:
        shard_records,
    localrule: True


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
    """The tune record a job reads its selection from: its pair's, or the pair the task names for
    the entry (measurements.tune.selection_source)."""
    from workflows.engine.measurements.tune import selection_source
    return records.record_path(RUNS, "tune", *selection_source(w.task, w.optimizer))


from workflows.engine import measurements, records


def measurement_records(name, task="{task}", optimizer="{optimizer}"):
    """The records one job of measurement `name` writes (records.record_path), one a final seed for
    a per-seed measurement; with the default wildcards, the rule's output pattern."""
    if measurements.get(name).per_seed:
        return [records.record_path(RUNS, name, task, optimizer, s) for s in config["final_seeds"]]
    return [records.record_path(RUNS, name, task, optimizer)]
