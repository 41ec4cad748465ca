import math

import pytest

import optimizers
from optimizers import memory
from workflows.engine import cli

GB = 1e9


def test_seed_70b_mixed_adam_table_is_reproduced_exactly_and_master_weights_added():
    b = memory.breakdown(70e9, "adam", "mixed")
    # Seed 001: fp16 params 140 + fp16 grads 140 + fp32 m 280 + fp32 v 280 = 840 GB.
    assert b["params"] == 140 * GB
    assert b["grads"] == 140 * GB
    assert b["state"] == (280 + 280) * GB
    assert b["total_without_master"] == 840 * GB
    # What the seed leaves out: the fp32 master copy of the weights.
    assert b["master"] == 280 * GB
    assert b["total"] == 1120 * GB
    assert b["bytes_per_param"] == 16


def test_seed_table_rows_and_flag():
    df = memory.seed_table_70b()
    assert list(df["seed_GB"]) == [140.0, 140.0, 280.0, 280.0]
    assert df["matches"].all()
    assert df["computed_GB"].sum() == 840.0
    assert df.attrs["complete"] is False
    assert df.attrs["omitted_master_GB"] == 280.0 and df.attrs["total_with_master_GB"] == 1120.0


def test_fp32_adam_is_16_bytes_per_param():
    b = memory.breakdown(1e9, "adam", "fp32")
    assert (b["params"], b["grads"], b["state"], b["master"]) == (4e9, 4e9, 8e9, 0)
    assert b["bytes_per_param"] == 16 and b["total"] == 16e9


def test_sgd_without_momentum_has_no_state():
    for precision in memory.PRECISIONS:
        b = memory.breakdown(7e9, "sgd", precision)
        assert b["state"] == 0 and b["state_bytes_per_param"] == 0


def test_shape_dependent_state_is_noted():
    b = memory.breakdown(7e9, "adafactor", "mixed")
    assert b["state_bytes_per_param"] < 0.01  # a + b numbers for an a x b matrix
    assert "depends on shape" in b["note"]


@pytest.mark.parametrize("name", optimizers.names())
@pytest.mark.parametrize("precision", memory.PRECISIONS)
def test_every_registered_optimizer_has_a_finite_non_negative_breakdown(name, precision):
    b = memory.breakdown(1.3e9, name, precision)
    for key in ("params", "grads", "state", "master", "total", "total_without_master", "state_bytes_per_param"):
        assert math.isfinite(b[key]) and b[key] >= 0, (key, b[key])
    assert b["total"] == pytest.approx(b["params"] + b["grads"] + b["state"] + b["master"])


def test_tidy_table():
    df = memory.table(sizes=(125e6, 70e9), optimizers=["adam", "sgd"])
    assert set(df.columns) >= {"size", "optimizer", "component", "bytes", "GB"}
    assert len(df) == 2 * 2 * len(memory.COMPONENTS)
    adam70 = df[(df["size"] == 70e9) & (df["optimizer"] == "adam")]
    assert adam70["GB"].sum() == pytest.approx(1120)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="precision"):
        memory.breakdown(1e9, "adam", "fp8")
    with pytest.raises(KeyError, match="valid"):
        memory.breakdown(1e9, "adamm", "fp32")


def test_cli_prints_a_markdown_table(capsys):
    assert cli.main(["memory", "--params", "70e9", "--optimizer", "adam"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| optimizer"))
    for column in ("params GB", "grads GB", "state GB", "master GB", "total GB"):
        assert column in header
    row = next(line for line in out.splitlines() if line.startswith("| adam "))
    assert "1120" in row and "560" in row
    assert "Leaves out" in out and "master" in out.splitlines()[-1]


def test_cli_all_optimizers_and_count_suffixes(capsys):
    assert cli.main(["memory", "--params", "7B", "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert all(f"| {name} " in out for name in optimizers.names())


def test_cli_refuses_an_unknown_optimizer(capsys):
    assert cli.main(["memory", "--params", "70e9", "--optimizer", "adamm"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown optimizer 'adamm'" in captured.err and "adamw" in captured.err
    assert cli.main(["memory", "--params", "lots"]) == 2
    assert "not a parameter count" in capsys.readouterr().err


def test_a_parameter_count_is_a_whole_number():
    assert memory.parse_count("70e9") == 70_000_000_000
    assert memory.parse_count("1.1B") == 1_100_000_000   # decimal: 1.1 * 1e9 in floats is not whole
    assert memory.parse_count("1.3b") == 1_300_000_000 and memory.parse_count("350k") == 350_000
    assert memory.parse_count("1_000") == 1000 and memory.parse_count("1") == 1
    for text in ("1.5", "0.5", "0", "-3", "1e400", "nan", "inf", "1.0000001k", "2e15"):
        with pytest.raises(ValueError, match="valid: a whole number from 1"):
            memory.parse_count(text)
    for n in (1.5, 0, -1, float("nan"), float("inf"), True, "7B"):
        with pytest.raises(ValueError, match=r"invalid n_params=.*valid: a whole number from 1"):
            memory.breakdown(n, "adam", "fp32")


def test_cli_refuses_a_fractional_count_in_one_line(capsys):
    assert cli.main(["memory", "--params", "1.5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        "optbench memory: error: argument --params: '1.5' is not a whole number of parameters; "
        "valid: a whole number from 1 to 1e+15, e.g. 70e9, 70B, 1.3B, 125M"]
