"""The plan (`optbench plan`, workflows/engine/plan.py), FLOP counts and the cost tables' arithmetic."""
import collections
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workflows.engine import cli, cost, plan

REPO = Path(__file__).resolve().parent.parent
PROFILES = sorted(p.stem for p in (REPO / "workflows" / "config").glob("*.yaml"))


def test_lm_flops_equal_a_hand_count():
    """Smoke LM: 2 layers, dim 32, 2 heads, ffn 64, seq 32, batch 8, 256 byte ids. The matrix
    products hold N = layers·(4·d² + 3·d·f) + vocab·d (lm_head; the embedding is a lookup, no
    product) weights, each used 2 FLOPs a token forward and 4 backward: 6·N·tokens. Attention per
    layer and sequence: QKᵀ and AV, 2·seq²·d each forward (4), and backward's five products as
    torch counts flash attention (the scores recomputed, dP, dV, dQ, dK: 10): 14·layers·seq²·d·batch.
    Integers: the count must be exact."""
    from tasks.lm import VOCAB
    from workflows.engine import flops
    layers, d, f, seq, batch = 2, 32, 64, 32, 8
    n = layers * (4 * d * d + 3 * d * f) + VOCAB * d
    hand = 6 * n * seq * batch + 14 * layers * seq * seq * d * batch
    assert flops.step_cost("lm-stdlib", "smoke")["flops_per_step"] == hand


def dag_counts(profile: str, cwd: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(cwd), "-n",
                          "--configfile", str(REPO / "workflows/config" / f"{profile}.yaml")],
                         capture_output=True, text=True, check=True, cwd=cwd).stdout
    stats = out[out.index("Job stats:"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m[1] != "total"}


@pytest.mark.parametrize("profile", PROFILES)
def test_plan_job_counts_equal_the_dag(profile, tmp_path):
    config = cli.plan_config(str(REPO / "workflows/config" / f"{profile}.yaml"), [])
    planned = collections.Counter(rule for rule, _, _ in plan.jobs(config))
    planned.update(plan.CLOSING)
    assert dict(planned) == dag_counts(profile, tmp_path)


def test_plan_counts_runs_and_steps_of_a_final_job():
    config = cli.plan_config(str(REPO / "workflows/config/smoke.yaml"), ["final_seeds=[0,1,2,3]"])
    rows = {(r["rule"], r["task"]): r for r in plan.plan_rows(config)}
    quad = rows[("final", "quadratic-k1e2")]
    from tasks import get
    assert quad["jobs"] == 3 and quad["runs"] == 12            # sgd, adam, adamw × 4 seeds (smoke.yaml's list)
    assert quad["steps"] == 12 * get("quadratic-k1e2").size("smoke")["steps"]


@pytest.mark.parametrize("args, message", [
    (["--profile", "smok"], "--profile 'smok': unknown profile; valid: "),
    (["--profile", "smoke", "--config", "threads=0"], "config threads: 0 is less than the minimum of 1"),
    (["--profile", "smoke", "--config", "optimizers=[adam,adamm]"], "unknown 'adamm'; valid:"),
    (["--configfile", "nope.yaml"], "--configfile nope.yaml: no such file"),
])
def test_plan_refuses_what_the_pipeline_refuses(args, message, capsys):
    assert cli.main(["plan", *args]) == 2
    assert message in capsys.readouterr().err


def test_invocations_pair_and_a_killed_one_ends_at_the_next_start(tmp_path):
    lines = [{"event": "start", "time": 0.0, "cores": 2, "pid": 1},           # killed: no end
             {"event": "start", "time": 100.0, "cores": 2, "pid": 2},
             {"event": "success", "time": 130.0, "cores": 2, "pid": 2},
             {"event": "start", "time": 200.0, "cores": 4, "pid": 3}]         # the one aggregating
    path = tmp_path / "invocations.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rows = cost.invocation_rows(path, now=210.0)
    assert [(r["status"], r["wall_seconds"], r["cores"]) for r in rows] == \
        [("killed", 100.0, 2), ("success", 30.0, 2), ("running", 10.0, 4)]
    busy = [{"rule": "final", "task": "t", "optimizer": "o", "s": 1.0, "cpu_time": 120.0}]
    u = cost.utilisation(busy, rows)
    assert u["core_utilisation"] == pytest.approx(120.0 / (100 * 2 + 30 * 2 + 10 * 4))


def test_shards_wall_time_is_the_union_of_their_invocations(tmp_path):
    """Two shards at once (events interleaved: each end closes its own process's start), 8 cores
    each, then the aggregating invocation alone: wall time 120 + 10 s (the overlap once), cores the
    most held at once (16), utilisation over each invocation's own wall × cores."""
    lines = [{"event": "start", "time": 0.0, "cores": 8, "pid": 1},
             {"event": "start", "time": 50.0, "cores": 8, "pid": 2},
             {"event": "success", "time": 100.0, "cores": 8, "pid": 1},
             {"event": "success", "time": 120.0, "cores": 8, "pid": 2},
             {"event": "start", "time": 130.0, "cores": 8, "pid": 3}]
    path = tmp_path / "invocations.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rows = cost.invocation_rows(path, now=140.0)
    assert [(r["status"], r["wall_seconds"]) for r in rows] == \
        [("success", 100.0), ("success", 70.0), ("running", 10.0)]
    busy = [{"rule": "final", "task": "t", "optimizer": "o", "s": 1.0, "cpu_time": 900.0}]
    u = cost.utilisation(busy, rows)
    assert u["wall_seconds"] == pytest.approx(130.0) and u["cores"] == 16
    assert u["core_utilisation"] == pytest.approx(900.0 / ((100 + 70 + 10) * 8))
    back_to_back = [dict(start=0.0, end=10.0, cores=2), dict(start=10.0, end=15.0, cores=2)]
    assert cost.wall_seconds(back_to_back) == 15.0 and cost.summary_cores(back_to_back) == 2
    inside = [dict(start=0.0, end=100.0, cores=4), dict(start=20.0, end=30.0, cores=4)]   # one within the other
    assert cost.wall_seconds(inside) == 100.0 and cost.summary_cores(inside) == 8


def test_longest_chain_follows_tune_into_its_final_job():
    rows = [dict(rule=r, task=t, optimizer=o, s=s) for r, t, o, s in [
        ("tune", "cnn-digits", "adamw", 5.0), ("final", "cnn-digits", "adamw", 4.0),
        ("stability", "cnn-digits", "adamw", 1.0), ("tune", "rosenbrock", "sgd", 1.0),
        ("final", "rosenbrock", "sgd", 7.0), ("steptime", "cnn-digits", "adamw", 8.5)]]
    chain = cost.longest_chain(rows)
    assert chain == {"seconds": 9.0, "jobs": ["tune:cnn-digits/adamw", "final:cnn-digits/adamw"]}
    rows.append(dict(rule="steptime", task="lm-stdlib", optimizer="adamw", s=9.5))   # a job alone can be the longest
    assert cost.longest_chain(rows) == {"seconds": 9.5, "jobs": ["steptime:lm-stdlib/adamw"]}
    # a pair at another's selection chains from that pair's tune job
    rows += [dict(rule="tune", task="lm-stdlib", optimizer="muon", s=6.0),
             dict(rule="final", task="lm-stdlib-qk", optimizer="muonclip", s=4.0)]
    assert cost.longest_chain(rows) == {"seconds": 10.0, "jobs": ["tune:lm-stdlib/muon", "final:lm-stdlib-qk/muonclip"]}


def test_benchmark_rows_read_snakemakes_file(tmp_path):
    path = tmp_path / "final" / "lm" / "adam.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    "12.5\t0:00:12\t300.1\t900\t280\t290\t0\t1\t95.0\t11.9\n")
    (row,) = cost.benchmark_rows([path, tmp_path / "missing.tsv"], tmp_path)
    assert (row["rule"], row["task"], row["optimizer"], row["s"], row["cpu_time"]) == ("final", "lm", "adam", 12.5, 11.9)


def test_the_recorded_calibration_pools_every_timed_run_and_splits_a_final_job():
    """Every run the tables time joins the step: the tuned and self-tuning tracks and the precision
    study's fp32 arm (x: 4 s + 0.5 s over 250 steps). Without a step-time job the final job's whole
    time outside start-up and its runs' training seconds is its setup, and no final run pays more."""
    runs = [dict(task="a", optimizer="x", track="tuned", steps=100, train_seconds=2.0),
            dict(task="a", optimizer="x", track="tuned", steps=100, train_seconds=2.0),
            dict(task="a", optimizer="y", track="defaults", steps=100, train_seconds=9.0)]
    job = dict(rule="final", task="a", optimizer="x", s=plan.STARTUP_SECONDS + 4.0 + 1.0)
    precision = [dict(task="a", optimizer="x", precision="fp32", loss_scaling="none", steps_done=50, train_seconds=0.5),
                 dict(task="a", optimizer="x", precision="bf16", loss_scaling="none", steps_done=50, train_seconds=3.0),
                 dict(task="a", optimizer="x", precision="fp16", loss_scaling="dynamic", steps_done=float("nan"),
                      train_seconds=9.0)]   # nan: left out
    found = plan.recorded_calibration(runs, [job], precision)
    assert found == {"a": {"seconds_per_step": pytest.approx(13.5 / 350), "run_overhead": 0.0,
                           "optimizer_seconds_per_step": {"x": pytest.approx(0.018), "y": pytest.approx(0.09)},
                           "setup_overhead": pytest.approx(1.0), "final_run_overhead": 0.0,
                           "precision_factor": pytest.approx(3.5 / (100 * 0.018))}}
    c = found["a"]
    assert plan.estimate_seconds("final", 2, 6, 100, c, "x") == pytest.approx(2 * (plan.STARTUP_SECONDS + 1) + 1.8)
    assert plan.estimate_seconds("precision", 1, 4, 100, c, "x") == pytest.approx(plan.STARTUP_SECONDS + 1 + 3.5)


def test_one_model_plans_every_rule_from_a_setup_a_job_and_a_final_runs_own_overhead():
    """Two optimizers of task a, one at 5 times the other's step: a job of the cheap one is planned
    at its own step, not the task's mean. The step-time job (no training run: its 2 × (warm-up +
    steps × rounds) = 14 optimizer steps at a tenth of a training step) gives the setup, 1.5 s; the
    final jobs' time outside start-up, setup and training, 2 × 4 s over their 4 runs, is the final
    run's own overhead, 2 s, which a tuning run does not pay. Task b, without a step-time job, takes
    the machine's setup up to its final job's time outside steps (0.5 s); task c takes it whole."""
    runs = [dict(task="a", optimizer="x", track="tuned", steps=100, train_seconds=1.0),
            dict(task="a", optimizer="x", track="tuned", steps=100, train_seconds=1.0),
            dict(task="a", optimizer="y", track="tuned", steps=100, train_seconds=5.0),
            dict(task="a", optimizer="y", track="tuned", steps=100, train_seconds=5.0),
            dict(task="b", optimizer="x", track="tuned", steps=100, train_seconds=1.0),
            dict(task="c", optimizer="x", track="tuned", steps=100, train_seconds=1.0)]
    steptime = {"steptime": {"steps": 3, "warmup": 1, "rounds": 2}}
    jobs = [dict(rule="final", task="a", optimizer=o, s=plan.STARTUP_SECONDS + 1.5 + 4.0 + t)
            for o, t in (("x", 2.0), ("y", 10.0))]
    jobs += [dict(rule="steptime", task="a", optimizer="y", s=plan.STARTUP_SECONDS + 1.5 + 14 * 0.1 * 0.05),
             dict(rule="final", task="b", optimizer="x", s=plan.STARTUP_SECONDS + 0.5 + 1.0),
             dict(rule="final", task="c", optimizer="x", s=plan.STARTUP_SECONDS + 10.0 + 1.0)]
    found = plan.recorded_calibration(runs, jobs, config=steptime)
    a = found["a"]
    assert a["seconds_per_step"] == pytest.approx(0.03) and a["optimizer_seconds_per_step"] == {"x": 0.01, "y": 0.05}
    assert a["setup_overhead"] == pytest.approx(1.5) and a["final_run_overhead"] == pytest.approx(2.0)
    assert (found["b"]["setup_overhead"], found["b"]["final_run_overhead"]) == pytest.approx((0.5, 0.0))
    assert (found["c"]["setup_overhead"], found["c"]["final_run_overhead"]) == pytest.approx((1.5, 8.5))
    assert plan.estimate_seconds("tune", 1, 4, 200, a, "x") == pytest.approx(plan.STARTUP_SECONDS + 1.5 + 2)
    assert plan.estimate_seconds("tune", 1, 4, 200, a) == pytest.approx(plan.STARTUP_SECONDS + 1.5 + 6)   # the mean
    assert plan.estimate_seconds("final", 1, 2, 200, a, "x") == pytest.approx(jobs[0]["s"])
    assert plan.estimate_seconds("defaults", 1, 2, 200, a, "x") == pytest.approx(jobs[0]["s"])   # a run record too
    assert plan.estimate_seconds("steptime", 1, 0, 14, a, "y") == pytest.approx(jobs[2]["s"])
    assert plan.estimate_seconds("baselines", 1, 0, 0, a) == pytest.approx(plan.STARTUP_SECONDS + 1.5)


def test_the_aggregation_plan_asks_for_no_cuda_on_a_cuda_profile(monkeypatch):
    """On SLURM the aggregate job runs on a CPU partition: with a profile whose device is cuda, the
    plan rows (calibration, FLOPs and bytes of every task) come without touching CUDA."""
    def refuse(*args, **kwargs):
        raise AssertionError("the aggregation plan asked for CUDA")
    monkeypatch.setattr(torch.cuda, "_lazy_init", refuse)    # every CUDA tensor goes through it
    monkeypatch.setattr(torch.cuda, "is_available", refuse)
    config = cli.plan_config(str(REPO / "workflows/config/smoke.yaml"), ["device=cuda"])
    runs = [dict(task="quadratic-k1e2", optimizer="sgd", track="tuned", steps=50, train_seconds=0.1)]
    jobs = [dict(rule="final", task="quadratic-k1e2", optimizer="sgd", s=plan.STARTUP_SECONDS + 1.0)]
    rows = plan.aggregation_rows(config, runs, jobs, [], plan.jobs(config))
    assert {r["task"] for r in rows} == {t for _, t, _ in plan.jobs(config)}
    assert all(r["flops_per_step"] is not None for r in rows)
    assert all((r["estimated_seconds"] is not None) == (r["task"] == "quadratic-k1e2") for r in rows)
    script = (REPO / "workflows/scripts/aggregate.py").read_text()
    assert "plan.aggregation_rows(" in script and "step_cost" not in script   # the job plans through it alone


def test_shards_split_the_pairs_disjointly_and_keep_each_pairs_jobs_together():
    config = cli.plan_config(str(REPO / "workflows/config/cpu.yaml"), [])
    jobs = plan.jobs(config)
    shards = [plan.shard_jobs(jobs, (i, 3)) for i in range(3)]
    assert sorted(j for shard in shards for j in shard) == sorted(jobs)      # every job once
    pairs = [{(t, o) for _, t, o in shard} for shard in shards]
    assert all(pairs) and not (pairs[0] & pairs[1] or pairs[0] & pairs[2] or pairs[1] & pairs[2])
    # a pair at another's selection goes with it (its job reads that pair's tune record)
    assert [("lm-stdlib", "muon") in p for p in pairs] == [("lm-stdlib-qk", "muonclip") in p for p in pairs]
    from workflows.engine.measurements.tune import selection_source
    units = [{selection_source(*p) for p in shard} for shard in pairs]
    assert max(map(len, units)) - min(map(len, units)) <= 1                  # dealt out in turn
    assert plan.shard_jobs(jobs, None) == jobs and plan.shard_spec("") is None and plan.shard_spec("1/2") == (1, 2)
    for bad in ("2/2", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError, match=r"OPTBENCH_SHARD=.*; valid: i/n with 0 <= i < n"):
            plan.shard_spec(bad)


def test_adams_step_moves_its_weights_gradients_and_two_moments():
    """Adam on one 1024×1024 fp32 matrix: the weights and the gradient read and the weights written
    (3 × 4 bytes an element), each moment read and written (2 moments × 2 × 4 bytes), the step
    counter (a 4-byte fp32 scalar) read and written: 28 bytes an element and 8, no matrix work."""
    from workflows.engine.flops import optimizer_step_cost
    n = 1024 * 1024
    step = optimizer_step_cost("quadratic-k1e2", "adam", [("w", (1024, 1024), torch.float32)])
    assert step == {"bytes": 3 * 4 * n + 2 * (2 * 4 * n + 4)}


def test_muons_newton_schulz_flops_are_three_products_an_iteration():
    """On a 512×1408 momentum: X Xᵀ (2·512²·1408), b·A + c·A² (2·512³), (…)·X (2·512²·1408)."""
    import optimizers
    spec = optimizers.get("muon")
    hp = spec.hparams({})
    assert spec.step_flops((1408, 512), hp) == {"bf16": hp["ns_steps"] * (4 * 512 ** 2 * 1408 + 2 * 512 ** 3)}


def test_shampoos_step_costs_less_the_rarer_its_roots():
    """Every `preconditioning_compute_steps` steps an SVD per dimension: the H100 estimate of a step
    on the gpu LM's shapes falls as the interval grows (1: the entry's, 1000: ScalableShampoo's)."""
    import optimizers
    spec = optimizers.get("shampoo")
    cost = {"flops_per_step": 0.0, "bytes_per_step": 0.0, "parameters": [("w", (512, 1408), torch.float32)]}
    seconds = []
    for every in (1, 10, 1000):
        flops = spec.step_flops((512, 1408), spec.hparams({"preconditioning_compute_steps": every}))
        seconds.append(plan.gpu_step(cost, {"bytes": 0.0, **flops}, "fp32", alone=True)[1])
    assert seconds[0] > seconds[1] > seconds[2] > 0


def test_gpu_full_is_planned_overnight_on_one_h100_and_says_it_is_an_estimate(capsys):
    assert cli.main(["plan", "--profile", "gpu-full", "--h100"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    hours = float(re.search(r"\(([\d.]+) h\) of wall time on one GPU shared by (\d+) jobs", last)[1])
    assert hours <= 8.0
    assert "an estimate from FLOPs and bytes, not a measurement" in last
    assert f"shared by {plan.gpu_pool()} jobs" in last
