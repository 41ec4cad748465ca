# Final runs at the selected learning rate, one job per task x optimizer x seed.


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
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/final.py"
