import json
import os
import subprocess
import sys

import pytest

from workflows.engine import cli


def test_list_optimizers_and_tasks(capsys):
    assert cli.main(["list", "optimizers"]) == 0
    out = capsys.readouterr().out
    assert "adamw" in out and "torch.optim.AdamW" in out and "needs" in out
    assert cli.main(["list", "tasks"]) == 0
    assert "quadratic-k1e2" in capsys.readouterr().out


def test_run_writes_the_pipeline_record(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert cli.main(["run", "--task", "quadratic-k1e2", "--optimizer", "momentum", "--steps", "7",
                     "--lr", "0.05", "--hparam", "momentum=0.5", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["kind"] == "run" and len(record["curves"]["loss"]) == 7
    assert record["optimizer"]["hparams"]["momentum"] == 0.5


def test_unknown_names_are_refused_with_the_valid_ones(capsys):
    assert cli.main(["run", "--task", "quadratic-k1e2", "--optimizer", "adamm"]) == 2
    err = capsys.readouterr().err
    assert "unknown optimizer 'adamm'" in err and "adamw" in err
    assert cli.main(["run", "--task", "nope", "--optimizer", "adam"]) == 2
    assert "unknown task 'nope'; valid:" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Bad input is refused before any training starts: exit status 2, one line on stderr that names
# the value and what is valid, no traceback.

@pytest.fixture
def no_training(monkeypatch):
    """Training must not start: the harness's train is replaced by one that fails the test."""
    from workflows.engine import harness

    def train(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(harness, "train", train)


def refused(capsys, argv, *expected):
    """cli.main(argv) exits 2 with one line on stderr containing each of `expected` and 'valid'."""
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    for text in expected + ("valid",):
        assert text in lines[0], (text, lines[0])
    return lines[0]


RUN = ["run", "--task", "quadratic-k1e2", "--optimizer", "adam"]


@pytest.mark.parametrize("hparam,named", [
    ("betas=abc", "betas='abc'"), ("betas=(0.9,)", "betas=(0.9,)"),
    ("betas=(0.9,0.99,0.5)", "betas=(0.9, 0.99, 0.5)"), ("eps=abc", "eps='abc'"),
    ("eps=True", "eps=True"), ("betas=(0.9,'x')", "betas=(0.9, 'x')"), ("lr=nan", "lr='nan'"),
])
def test_hyperparameters_of_the_wrong_type_are_refused(capsys, no_training, hparam, named):
    line = refused(capsys, RUN + ["--hparam", hparam], f"optimizer 'adam': invalid {named}: ")
    assert line.startswith("optbench run: error: optimizer 'adam': invalid ")


def test_hyperparameter_messages_say_what_is_valid(capsys, no_training):
    refused(capsys, RUN + ["--hparam", "betas=(0.9,)"], "1 value, not 2", "valid: 2 numbers, each in [0, 1)")
    refused(capsys, RUN + ["--hparam", "eps=abc"], "a string, not a number", "valid: a finite number > 0")
    refused(capsys, RUN + ["--lr", "-1"], "invalid lr=-1.0", "valid: a finite number > 0")
    refused(capsys, RUN + ["--hparam", "nope=1"], "invalid nope=1: no such hyperparameter",
            "valid: beta2, betas, eps, lr, weight_decay")
    refused(capsys, RUN + ["--hparam", "betas"], "'betas' is not KEY=VALUE")


@pytest.mark.parametrize("option,value,expected", [
    ("--steps", "1000000000000", "1000000000000 is too large; valid: a whole number from 1 to 10000000"),
    ("--steps", "1e12", "1e12 is too large"),
    ("--steps", "0", "0 is too small; valid: a whole number from 1"),
    ("--steps", "-5", "-5 is too small"),
    ("--steps", "2.5", "'2.5' is not a whole number"),
    ("--threads", "-1", "-1 is too small; valid: a whole number from 1"),
    ("--threads", "0", "0 is too small"),
    ("--seed", "-5", "-5 is too small; valid: a whole number from 0"),
    ("--seed", "abc", "'abc' is not a whole number"),
    ("--device", "tpu", "'tpu' is not a device; valid: cpu, cuda or cuda:N"),
    ("--device", "cuda:x", "'cuda:x' is not a device"),
    ("--out", "", "'' is an empty path"),
    ("--lr", "abc", "'abc' is not a number"),
    ("--loss-scale", "0", "'0' is out of range; valid: a finite number > 0"),
    ("--lr-scale", "inf", "'inf' is out of range"),
])
def test_bad_options_are_refused(capsys, no_training, option, value, expected):
    line = refused(capsys, RUN + [option, value], f"argument {option}: ", expected)
    assert line.startswith("optbench run: error: ")


def test_cuda_is_refused_where_it_is_not_available(capsys, no_training, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(capsys, RUN + ["--device", "cuda"], "--device cuda: CUDA is not available", "valid: cpu")
    refused(capsys, RUN + ["--device", "cuda:0"], "--device cuda:0: CUDA is not available")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    refused(capsys, RUN + ["--device", "cuda:3"], "this machine has 1 CUDA device", "valid: cpu, cuda, cuda:0")


def test_an_unwritable_out_is_refused_before_training(capsys, no_training, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    refused(capsys, RUN + ["--out", str(a_file / "r.json")], f"{a_file} is a file, not a directory")
    refused(capsys, RUN + ["--out", str(tmp_path)], "is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_directory_is_refused_before_training(capsys, no_training, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    refused(capsys, RUN + ["--out", str(ro / "sub" / "r.json")], "cannot write in")


def test_a_creatable_out_directory_is_accepted_and_not_created_early(tmp_path):
    target = tmp_path / "new" / "dir" / "r.json"
    cli.check_writable(str(target))
    assert not (tmp_path / "new").exists()


def test_memory_refuses_a_fractional_parameter_count(capsys):
    refused(capsys, ["memory", "--params", "1.5"], "'1.5' is not a whole number of parameters",
            "valid: a whole number from 1")
    refused(capsys, ["memory", "--params", "0"], "'0' is out of range")


def test_a_diverged_run_prints_its_summary_as_json(capsys, monkeypatch):
    from workflows.engine import harness
    diverged = {"final_metric": float("nan"), "final_loss": float("inf"), "steps_to_target": None,
                "diverged": True, "diverge_reason": "non-finite loss at step 1",
                "task": {"metric": "suboptimality"}, "step_time": {"median": None}, "state_bytes": {"measured": 0}}
    monkeypatch.setattr(harness, "train", lambda cfg, **kw: diverged)
    assert cli.main(RUN + ["--lr", "1e38", "--steps", "3"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err

    def strict(constant):
        raise ValueError(f"not JSON: {constant}")
    summary = json.loads(captured.out, parse_constant=strict)
    assert summary["diverged"] is True and summary["final_metric"] == "nan" and summary["final_loss"] == "inf"


def test_help_imports_nothing_heavy_of_its_own():
    # `optbench --help` must not build registries or import pandas: everything beyond what the
    # `tasks` package itself imports is loaded inside the command that needs it.
    code = ("import sys, tasks; before = set(sys.modules)\n"
            "from workflows.engine import cli\n"
            "assert cli.main(['--help']) == 0 and cli.main(['run', '--help']) == 0\n"
            "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = out.split("\n")[-2].split()
    heavy = [m for m in loaded if m.split(".")[0] in ("pandas", "optimizers", "scipy", "matplotlib")
             or m in ("workflows.engine.harness", "workflows.engine.records", "tasks.quadratic")]
    assert not heavy, heavy


def test_plan_refuses_an_empty_profile_and_a_bad_file_in_one_line(capsys, tmp_path):
    refused(capsys, ["plan", "--profile", ""], "--profile '': unknown profile", "valid: cpu")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: x\ntasks: [a, b\n")
    refused(capsys, ["plan", "--configfile", str(bad)], "not valid YAML")
    twice = tmp_path / "twice.yaml"
    twice.write_text("profile: x\nsize: smoke\nsize: cpu\n")
    refused(capsys, ["plan", "--configfile", str(twice)], "key 'size' is given twice, on lines 2 and 3", "valid: once")


def test_plan_into_a_closed_pipe_ends_quietly():
    proc = subprocess.run(f"{sys.executable} -m workflows.engine.cli plan --profile smoke | head -1",
                          shell=True, capture_output=True, text=True)
    assert proc.stdout.startswith("profile smoke:") and "Traceback" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------------------------
# Options that contradict each other are refused before training, naming both and what is valid;
# what the pipeline would never run but an experiment may want is run with a warning.

@pytest.mark.parametrize("options,expected", [
    (["--lr", "1e-3", "--hparam", "lr=0.1"], "the lr is given twice, --lr 0.001 and --hparam lr=0.1; valid: one of them"),
    (["--loss-scaling", "static"], "--loss-scaling static needs --static-scale C"),
    (["--static-scale", "8"], "--static-scale 8 with --loss-scaling none: the scale acts only in static loss "
                              "scaling; valid: --loss-scaling static"),
    (["--static-scale", "8", "--loss-scaling", "dynamic"], "--static-scale 8 with --loss-scaling dynamic"),
    (["--loss-scaling", "static", "--static-scale", "8"], "--loss-scaling static with --precision fp32"),
    (["--loss-scaling", "dynamic"], "--loss-scaling dynamic with --precision fp32: loss scaling moves an fp16 "
                                    "backward into fp16's range"),
    (["--lr-floor", "0.1", "--schedule", "constant"], "--lr-floor 0.1 with schedule constant (--schedule constant)"),
    (["--precision", "bf16"], "precision 'bf16': task 'quadratic-k1e2' does not run under autocast (valid for it: fp32)"),
    (["--warmup", "5"], "argument --warmup: '5' is out of range; valid: a share of the run's steps in [0, 1)"),
    (["--lr", "-1e-3"], "optimizer 'adam': invalid lr=-0.001: out of range; valid: a finite number > 0"),
])
def test_contradicting_options_are_refused(capsys, no_training, options, expected):
    line = refused(capsys, RUN + options, expected)
    assert line.startswith("optbench run: error: ")


@pytest.mark.parametrize("argv,expected", [
    (["run", "--task", "quadratic-k1e2", "--optimizer", "schedulefree-adamw", "--lr-floor", "0.1"],
     "(entry 'schedulefree-adamw' brings its own schedule and runs at a constant lr): a constant lr has no floor"),
    (["run", "--task", "cnn-digits-constant-lr", "--optimizer", "sgd", "--lr-floor", "0.1"],
     "(task 'cnn-digits-constant-lr' runs at a constant lr)"),
])
def test_an_lr_floor_without_a_decaying_schedule_is_refused(capsys, no_training, argv, expected):
    refused(capsys, argv, expected, "valid: --schedule cosine or wsd with it, or no --lr-floor")


@pytest.fixture
def fake_training(monkeypatch):
    """train() replaced by one that keeps the config it was given and returns a minimal record."""
    from workflows.engine import harness
    seen = []

    def train(cfg, **kwargs):
        seen.append(cfg)
        return {"final_metric": 0.0, "final_loss": 0.0, "diverged": False, "task": {}}
    monkeypatch.setattr(harness, "train", train)
    return seen


@pytest.mark.parametrize("argv,expected", [
    (["--optimizer", "prodigy", "--lr", "0.5"], "lr=0.5 for 'prodigy', a self-tuning entry: it multiplies the step "
                                                 "size the entry adapts; the pipeline runs it at lr=1"),
    (["--optimizer", "adam", "--lr", "1e300"], "lr=1e+300 is outside the tuning range of 'adam', 1e-05..1"),
    (["--optimizer", "schedulefree-adamw", "--schedule", "cosine"],
     "schedule cosine for 'schedulefree-adamw', which brings its own schedule; the pipeline runs it at a constant lr"),
])
def test_what_the_pipeline_never_runs_is_run_with_a_warning(capsys, fake_training, argv, expected):
    assert cli.main(["run", "--task", "quadratic-k1e2", *argv]) == 0
    assert capsys.readouterr().err.strip() == f"optbench run: warning: {expected}"
    assert len(fake_training) == 1


def test_an_lr_in_the_range_and_a_scaled_static_fp16_run_say_nothing(capsys, fake_training):
    assert cli.main(RUN + ["--lr", "1e-2"]) == 0
    assert cli.main(["run", "--task", "cnn-digits", "--optimizer", "adam", "--precision", "fp16",
                     "--loss-scaling", "static", "--static-scale", "1024"]) == 0
    assert capsys.readouterr().err == "" and fake_training[1].static_scale == 1024.0


def test_warmup_is_a_share_of_the_steps_as_in_a_profile(fake_training):
    assert cli.main(RUN + ["--steps", "200", "--warmup", "0.1"]) == 0
    assert fake_training[0].warmup == 20 and fake_training[0].schedule == "cosine"


def test_plan_of_a_cuda_profile_works_without_cuda_and_calibrating_it_is_refused(capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["plan", "--profile", "gpu"]) == 0
    assert capsys.readouterr().out.startswith("profile gpu: ")
    refused(capsys, ["plan", "--profile", "gpu", "--calibrate"], "--calibrate on config device 'cuda': CUDA is "
            "not available on this machine: torch ", "valid: cpu (--config device=cpu)")


def test_plan_of_a_profile_where_no_pair_can_run_says_so_in_one_line(capsys):
    refused(capsys, ["plan", "--profile", "smoke", "--config", "tasks=[embeddings-zipf-sparse]",
                     "optimizers=[adam]", "stability={tasks: []}", "steptime={tasks: []}",
                     "loop_options={tasks: []}", "defaults_track={tasks: []}", "precision={tasks: []}"],
            "no pair can run, so no job would (embeddings-zipf-sparse x adam: task embeddings-zipf-sparse "
            "requires sparse, which adam does not accept)", "valid optimizers for embeddings-zipf-sparse: ")


def test_run_parses_the_device_settings_with_runconfigs_defaults():
    """--fp32-precision and --no-deterministic, absent, are RunConfig's defaults (IEEE, deterministic)."""
    from workflows.engine import cli as cli_module
    args = cli_module.parser().parse_args(["run", "--task", "quadratic-k1e2", "--optimizer", "sgd"])
    assert (args.fp32_precision, args.deterministic) == ("ieee", True)
    args = cli_module.parser().parse_args(["run", "--task", "quadratic-k1e2", "--optimizer", "sgd",
                                           "--fp32-precision", "tf32", "--no-deterministic"])
    assert (args.fp32_precision, args.deterministic) == ("tf32", False)
