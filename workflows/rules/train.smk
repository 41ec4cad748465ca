# Final runs: one job per task x optimizer running every final seed in one process (one start-up,
# one import of torch, one data build), so that editing one optimizer's file reruns only its jobs.
# A kill loses only the runs in flight: --rerun-incomplete deletes every declared output of a job
# that did not finish, so each finished seed is first written to a store outside the outputs
# (results/runs/<profile>/store/, see workflows/scripts/final.py), and the rerun takes it from
# there; the run in flight resumes from its checkpoint.


rule final:
    input:
        sources,
        summary=tune_summary,
    output:
        measurement_records("final"),
    log:
        f"{LOGS}/final/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/final/{{task}}/{{optimizer}}.tsv"
    params:
        seeds=config["final_seeds"],
        size=config["size"],
        device=config["device"],
        **SHARED_PARAMS,
        schedule=config["schedule"],
        precision=lambda w: config["train_precision"].get(w.task, "fp32"),
        checkpoint_every=config["checkpoint_every"],
        monitor_every=config["monitor_every"],
        checkpoints=lambda w: f"{RUNS}/checkpoints/{w.task}/{w.optimizer}",
        store=lambda w: f"{RUNS}/store/final/{w.task}/{w.optimizer}",
        runs=RUNS,
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/final.py"


# The self-tuning track (AlgoPerf's term): the same runs at the entry's defaults, no tuning, so the
# report shows what tuning buys each optimizer.
rule defaults:
    input:
        sources,
    output:
        measurement_records("defaults"),
    log:
        f"{LOGS}/defaults/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/defaults/{{task}}/{{optimizer}}.tsv"
    params:
        seeds=config["final_seeds"],
        size=config["size"],
        device=config["device"],
        **SHARED_PARAMS,
        schedule=config["schedule"],
        precision=lambda w: config["train_precision"].get(w.task, "fp32"),
        checkpoint_every=config["checkpoint_every"],
        monitor_every=config["monitor_every"],
        checkpoints=lambda w: f"{RUNS}/checkpoints/defaults/{w.task}/{w.optimizer}",
        store=lambda w: f"{RUNS}/store/defaults/{w.task}/{w.optimizer}",
        runs=RUNS,
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/final.py"
