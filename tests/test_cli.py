import json

from tasks.runner import cli


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
