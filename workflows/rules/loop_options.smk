# What each training-loop option costs against the plain loop (time, activation memory, the maths).


rule loop_options:
    input:
        sources,
    output:
        f"{RUNS}/loop_options/{{task}}/{{optimizer}}.json",
    log:
        f"{LOGS}/loop_options/{{task}}/{{optimizer}}.log",
    params:
        loop_options=config["loop_options"],
        monitor_every=config["monitor_every"] or 10,
        size=config["size"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPU,
    script:
        "../scripts/loop_options.py"
