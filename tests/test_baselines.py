"""The LM's baselines (workflows/engine/measurements/baselines.py): Kneser–Ney byte n-grams, the
compressors' conditional code length, the measurement's jobs and rows; the LM's splits and test
windows they score (tasks/lm.py); the report's section on constructed tables (report/baselines.py)."""
import collections
import math
import random

import numpy as np
import pandas as pd
import pytest
import torch

import tasks
from report import baselines as section
from tasks import lm
from workflows.engine import config as configs
from workflows.engine.measurements import baselines
from workflows.engine.pairs import pairs


def corpus(n=3000, seed=0) -> bytes:
    """Text-like bytes: words of a small alphabet, so that contexts repeat and some never occur."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefg \n") for _ in range(rng.randint(1, 6))) for _ in range(40)]
    return b" ".join(rng.choice(words) for _ in range(n))[:n]


# --- the n-gram model -----------------------------------------------------------------------------

@pytest.mark.parametrize("order", baselines.ORDERS)
def test_kneser_ney_sums_to_one_over_the_256_bytes_for_any_context(order):
    """Seen contexts, unseen ones (bytes the corpus never has), contexts shorter than order - 1 and
    the empty one. A sum of 256 float64 terms each below 1 errs by < 256 * 2^-53 ~ 3e-14: 1e-12."""
    levels = baselines.fit(corpus(), max(baselines.ORDERS))
    for context in (b"", b"a", b"ab", b"abc d", b" \n\n", b"\x00\xff", b"ab\x00cd", b"zzzzzz"):
        p = baselines.distribution(levels, order, context)
        assert p.shape == (256,) and (p > 0).all()
        assert p.sum() == pytest.approx(1.0, abs=1e-12), (order, context)


def reference_kn(train: bytes, order: int, context: bytes, w: int, d=baselines.DISCOUNT) -> float:
    """Interpolated Kneser–Ney written out with dicts, one probability at a time: the top order
    (min(order, len(context) + 1)) counts occurrences, the lower ones distinct left extensions."""
    def table(k, continuation):
        if continuation:
            return collections.Counter(g[1:] for g in {train[i:i + k + 1] for i in range(len(train) - k)})
        return collections.Counter(train[i:i + k] for i in range(len(train) - k + 1))

    def p(k, h, top):
        if k == 0:
            return 1 / 256
        c = table(k, k < top)
        lower = p(k - 1, h[1:], top)
        following = {g: v for g, v in c.items() if g[:-1] == h}
        if not following:
            return lower
        return (max(c.get(h + bytes([w]), 0) - d, 0) + d * len(following) * lower) / sum(following.values())
    top = min(order, len(context) + 1)
    return p(top, context[len(context) - (top - 1):] if top > 1 else b"", top)


@pytest.mark.parametrize("order", baselines.ORDERS)
def test_kneser_ney_is_the_written_out_definition(order):
    """Against `reference_kn` for every byte after seen, unseen and short contexts. The same few
    float64 operations in another order: 1e-12 relative."""
    train = corpus(400)
    levels = baselines.fit(train)
    for context in (b"ab ", b"\n", b"", b"cd", b"gg\x00", b"a b c"):
        ours = baselines.distribution(levels, order, context)
        theirs = [reference_kn(train, order, context, w) for w in range(256)]
        assert ours == pytest.approx(theirs, rel=1e-12), (order, context)


def test_a_pattern_is_predicted_at_its_order_and_not_below():
    """"aab" repeated: two bytes of context fix the next byte ("aa" -> b, "ab" -> a, "ba" -> a),
    one does not ("a" -> a or b). At order 3, once a window gives two bytes of context, each byte
    costs -ln((c - d + d P_lower) / c) <= d / (c - d) with c ~ 1000 occurrences of its context:
    < 1e-3 nats; at order 2, ~ln 2 on a third of the bytes."""
    train = b"aab" * 1000
    levels = baselines.fit(train)
    windows = np.frombuffer((b"aab" * 22)[:65], np.uint8)[None]
    nats3 = baselines.window_nats(levels, 3, windows)
    assert nats3[:, 2:].max() < 1e-3          # positions with two bytes of context
    assert nats3[:, 2:].mean() < baselines.window_nats(levels, 2, windows)[:, 2:].mean() / 100
    assert baselines.window_nats(levels, 2, windows)[:, 2:].mean() > 0.1


def test_window_nats_scores_each_byte_from_its_own_window_only():
    """The same bytes as ten windows and as one long one: a byte with fewer than n - 1 bytes before
    it in its window is predicted from those alone (another number than with the window before it
    as context), a byte with n - 1 or more the same; a window's score does not depend on the others.
    Both sides are the same float64 operations per element (only the array shapes differ): 1e-12."""
    levels = baselines.fit(corpus())
    text = np.frombuffer(corpus(seed=1)[:650], np.uint8)
    windows = text.reshape(10, 65)
    apart = baselines.window_nats(levels, 5, windows)
    joined = baselines.window_nats(levels, 5, text[None, :])[0]      # joined[p - 1]: the byte at p
    assert apart.shape == (10, 64)
    assert apart[3] == pytest.approx(baselines.window_nats(levels, 5, windows[3:4])[0], rel=1e-12)
    assert apart[0] == pytest.approx(joined[:64], rel=1e-12)        # no window before the first
    for k in range(1, 10):   # apart[k, i] is the byte at 65 k + i + 1, with i + 1 bytes before it
        assert apart[k, 3:] == pytest.approx(joined[65 * k + 3:65 * k + 64], rel=1e-12)
    cut = [k for k in range(1, 10) if not np.allclose(apart[k, :3], joined[65 * k:65 * k + 3], rtol=1e-6)]
    assert len(cut) >= 5, cut   # windows whose first bytes lose context at the cut (most do)


def test_counts_are_integers_and_a_rerun_gives_the_same_bits():
    levels = baselines.fit(corpus())
    assert all(c.counts.dtype.kind == "i" and (s is None or s.counts.dtype.kind == "i") for c, s in levels)
    windows = np.frombuffer(corpus(seed=2)[:650], np.uint8).reshape(10, 65)
    again = baselines.fit(corpus())
    assert np.array_equal(baselines.window_nats(levels, 4, windows), baselines.window_nats(again, 4, windows))


# --- compressors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(baselines.COMPRESSORS))
def test_a_test_text_equal_to_the_training_text_costs_less_than_random_bytes(name):
    compress = baselines.COMPRESSORS[name]
    train = corpus(4000)
    noise = np.random.default_rng(0).integers(0, 256, len(train), dtype=np.uint8).tobytes()
    same = baselines.conditional_nats_per_byte(compress, train, train)
    random_ = baselines.conditional_nats_per_byte(compress, train, noise)
    assert same < 0.5 < math.log(256) - 0.5 < random_


# --- the measurement ------------------------------------------------------------------------------

def test_jobs_one_per_lm_family_on_its_base_task_filed_under_a_pair_the_profile_runs():
    for profile in ("smoke", "cpu"):
        config = configs.load(f"workflows/config/{profile}.yaml")
        found = baselines.jobs(config)
        assert [t for t, _ in found] == ["lm-stdlib"], (profile, found)
        assert found[0] in pairs(config)
    config = configs.load("workflows/config/smoke.yaml")
    config["tasks"] = [t for t in config["tasks"] if tasks.get(t).family != "lm"] + ["lm-stdlib-scale-x4", "lm-stdlib-qk"]
    assert [t for t, _ in baselines.jobs(config)] == ["lm-stdlib-qk"]
    config["tasks"] = [t for t in config["tasks"] if tasks.get(t).family != "lm"]
    assert baselines.jobs(config) == []


@pytest.fixture(scope="module")
def smoke_record():
    return baselines.run("lm-stdlib", "adamw", "smoke")


def test_rows_have_the_tables_columns_and_score_the_lms_test_positions(smoke_record):
    rows = baselines.rows(smoke_record)["baselines"]
    assert [list(r) for r in rows] == [list(baselines.COLUMNS)] * len(rows)
    assert [(r["baseline"], r["order"]) for r in rows] == [("ngram", n) for n in baselines.ORDERS] + [
        ("lzma", None), ("zlib", None)]
    problem = tasks.get("lm-stdlib").make("smoke", seed=0)
    test = problem.test(problem.model)
    windows = problem.data_splits()["test_windows"]
    for r in rows:
        assert r["n_bytes"] == (test["n_test"] if r["scope"] == baselines.WINDOWS else windows.numel())
        assert r["bits_per_byte"] == pytest.approx(r["nats_per_byte"] / math.log(2), rel=1e-12)   # one division
    ngram = [r["nats_per_byte"] for r in rows if r["baseline"] == "ngram"]
    assert ngram[0] > ngram[1] > ngram[2]       # context helps, on real text
    assert all(r["tokens_per_param"] == pytest.approx(r["steps"] * r["tokens_per_step"] / r["n_params"]) for r in rows)
    assert smoke_record["config"]["optimizer"] == "adamw" and smoke_record["kind"] == "baselines"


def test_a_task_without_data_splits_is_refused_naming_the_families():
    with pytest.raises(ValueError, match="has no data_splits; valid: a task of the families lm"):
        baselines.run("quadratic-k1e2", "adamw", "smoke")


# --- the LM's splits ------------------------------------------------------------------------------

def test_lm_test_windows_are_disjoint_from_validation_and_training_and_tile_the_test_split():
    corpus_, _ = lm.stdlib_corpus(1 << 16)
    s = lm.split(corpus_, seq=32, val_windows=8)
    width = 33
    n_train, n_val, n_test = s.bounds["train"], s.bounds["val"], s.bounds["test"]
    assert n_train + n_val + n_test == len(corpus_) and abs(n_val - n_test) <= 1
    val = {int(a) + j for a in s.val_starts for j in range(width)}
    test = [int(a) + j for a in s.test_starts for j in range(width)]
    assert len(test) == len(set(test))                      # test windows do not overlap
    assert min(val) >= n_train and max(val) < n_train + n_val
    assert min(test) == n_train + n_val and max(test) < len(corpus_)
    assert test == list(range(n_train + n_val, n_train + n_val + len(test)))   # side by side
    assert len(test) > n_test - width                       # all that fit
    assert torch.equal(s.test.reshape(-1), corpus_[n_train + n_val:n_train + n_val + len(test)])
    assert torch.equal(s.train, corpus_[:n_train])


def test_lm_data_splits_hold_the_windows_test_scores_and_the_training_bytes():
    problem = tasks.get("lm-stdlib").make("smoke", seed=0)
    splits = problem.data_splits()
    windows = splits["test_windows"]
    corpus_, _ = lm.stdlib_corpus(1 << 16)
    assert splits["train"] == bytes(corpus_[:problem.extras["train_bytes"]].numpy())
    result = problem.test(problem.model)
    per_window = lm.window_losses(problem.model, windows.long())
    # the same float64 reductions of the same logits in this process: equal up to the order of a
    # mean's summation, 1e-12 relative
    assert result["val_loss"] == pytest.approx(float(per_window.mean()), rel=1e-12)
    assert result["n_test"] == windows.shape[0] * (windows.shape[1] - 1) and result["n_windows"] == len(windows)
    # the plug-in standard error over windows (tasks.mean_and_se), against torch's std of the same
    # ~100 float64 values: two summation orders agree to ~1e-14 relative; 1e-9 leaves room
    assert result["se"] == pytest.approx(float(per_window.std(correction=0)) / math.sqrt(len(windows)), rel=1e-9)
    positions = {k: splits[f"{k}_index"] for k in ("train", "validation", "test")}
    assert torch.equal(positions["test"].view(windows.shape), torch.as_tensor(
        np.arange(windows.numel())).view(windows.shape) + problem.extras["train_bytes"] + problem.extras["val_bytes"])
    assert torch.equal(corpus_[positions["test"]].view(windows.shape), windows)
    assert torch.equal(positions["train"], torch.arange(problem.extras["train_bytes"]))
    other = windows.clone()
    other[:, 1:] = other[:, 1:].roll(1, 0)                   # other targets: another loss
    assert float(lm.window_losses(problem.model, other.long()).mean()) != result["val_loss"]


def test_lm_cpu_size_trains_at_twenty_tokens_per_parameter():
    size = tasks.get("lm-stdlib").size("cpu")
    assert size["steps"] * size["batch"] * size["seq"] / lm.count_parameters(size) >= 20


# --- the report's section -------------------------------------------------------------------------

def _tables(with_test=True):
    base = [dict(task="lm-stdlib", optimizer="sgd", baseline="ngram", order=n, nats_per_byte=v,
                 bits_per_byte=v / math.log(2), scope="test windows", n_bytes=51584, n_params=43168,
                 tokens_per_step=2048, steps=430, tokens_per_param=20.4)
            for n, v in ((1, 3.0), (2, 2.3), (3, 1.7), (4, 1.3), (5, 1.2))]
    base += [dict(base[0], baseline="lzma", order=np.nan, nats_per_byte=1.0, scope="contiguous test split", n_bytes=52390)]
    runs = [dict(task="lm-stdlib", optimizer=o, seed=s, track="tuned", diverged=d, final_metric=v + 0.5,
                 **({"test_metric": v} if with_test else {}))
            for o, v, d in (("muon", 1.25, False), ("adamw", 1.5, False), ("sgd", 1.0, True))
            for s in range(3)]
    return {"baselines": pd.DataFrame(base), "runs": pd.DataFrame(runs)}


def test_report_section_says_which_optimizers_beat_which_baseline(tmp_path):
    text = "\n".join(section.section(_tables(), tmp_path))
    assert ("below the trigram (1.7): adamw, muon; below the 4-gram (1.3): muon; below the 5-gram (1.2): none; "
            "below the lzma (1): none.") in text
    assert "20.4 tokens per parameter" in text and "43,168 parameters" in text
    assert "no `test_metric` column" not in text
    fallback = "\n".join(section.section(_tables(with_test=False), tmp_path))
    assert "no `test_metric` column" in fallback and "Mean last validation loss over the final seeds below the trigram (1.7): none" in fallback
    no_runs = _tables()
    no_runs["runs"] = no_runs["runs"].iloc[:0]
    assert "runs.csv has no final run of lm-stdlib" in "\n".join(section.section(no_runs, tmp_path))
    assert section.section({"baselines": pd.DataFrame()}, tmp_path) == []
