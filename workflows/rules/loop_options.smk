# What each training-loop option costs against the plain loop (time, activation memory, the maths).


rule loop_options:
    input:
        sources,
    output:
        measurement_records("loop_options"),
    log:
        f"{LOGS}/loop_options/{{task}}/{{optimizer}}.log",
    benchmark:
        f"{BENCHMARKS}/loop_options/{{task}}/{{optimizer}}.tsv"
    params:
        loop_options=config["loop_options"],
        monitor_every=config["loop_options"]["monitor_every"],
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
        "../scripts/loop_options.py"
