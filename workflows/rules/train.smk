# Final runs at the selected learning rate: one job per task x optimizer runs every final seed
# in-process (a job costs an interpreter and `import torch`), writing one record per seed.


rule final:
    input:
        sources,
        summary=tune_summary,
    output:
        [f"{RUNS}/final/{{task}}/{{optimizer}}/seed{seed}.json" for seed in config["final_seeds"]],
    log:
        f"{LOGS}/final/{{task}}/{{optimizer}}.log",
    params:
        size=config["size"],
        device=config["device"],
        seeds=config["final_seeds"],
        checkpoint_every=config["checkpoint_every"],
        monitor_every=config["monitor_every"],
        checkpoints=lambda w: f"{RUNS}/checkpoints/{w.task}/{w.optimizer}",
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/final.py"
