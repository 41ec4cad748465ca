# optimizer.step() alone, against torch AdamW measured in the same job.


rule steptime:
    input:
        sources,
    output:
        f"{RUNS}/steptime/{{task}}/{{optimizer}}.json",
    log:
        f"{LOGS}/steptime/{{task}}/{{optimizer}}.log",
    params:
        steptime=config["steptime"],
        size=config["size"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/steptime.py"
