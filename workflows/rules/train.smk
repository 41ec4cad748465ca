# Final runs at the selected learning rate: one job per task x optimizer x seed, so that a kill
# loses only the runs in flight (a job's outputs are all or nothing: --rerun-incomplete deletes
# every output of a job that did not finish), and a run killed mid-way resumes from its checkpoint.


rule final:
    input:
        sources,
        summary=tune_summary,
    output:
        f"{RUNS}/final/{{task}}/{{optimizer}}/seed{{seed}}.json",
    log:
        f"{LOGS}/final/{{task}}/{{optimizer}}/seed{{seed}}.log",
    params:
        size=config["size"],
        device=config["device"],
        checkpoint_every=config["checkpoint_every"],
        monitor_every=config["monitor_every"],
        checkpoint=lambda w: f"{RUNS}/checkpoints/{w.task}/{w.optimizer}/seed{w.seed}.ckpt",
        runs=RUNS,
        track="tuned",
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
        f"{RUNS}/defaults/{{task}}/{{optimizer}}/seed{{seed}}.json",
    log:
        f"{LOGS}/defaults/{{task}}/{{optimizer}}/seed{{seed}}.log",
    params:
        size=config["size"],
        device=config["device"],
        checkpoint_every=config["checkpoint_every"],
        monitor_every=config["monitor_every"],
        checkpoint=lambda w: f"{RUNS}/checkpoints/defaults/{w.task}/{w.optimizer}/seed{w.seed}.ckpt",
        runs=RUNS,
        track="defaults",
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/final.py"
