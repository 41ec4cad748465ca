# optimizer.step() alone, against torch AdamW measured in the same job.


rule steptime:
    input:
        sources,
    output:
        measurement_records("steptime"),
    log:
        f"{LOGS}/steptime/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/steptime/{{task}}/{{optimizer}}.tsv"
    params:
        steptime=config["steptime"],
        size=config["size"],
        device=config["device"],
        **TIMING_PARAMS,
        torch_threads=config["threads"],
    # Timings need a quiet machine: the job reserves every core, so no job runs beside it, and
    # times with the profile's torch threads. (On a cluster a job has its node to itself: the
    # slurm profile sets these threads back to 1.)
    threads: lambda w: workflow.cores  # read when a job is made: --unlock, which makes none, needs no --cores
    resources:
        gpu=TIMING_GPU,   # the whole GPU pool: no training job shares the device with it
    script:
        "../scripts/steptime.py"
