import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# No network at run time: every task builds its data from generators or bundled data.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# Torch threads per test: 1 by default (tiny tensors: threads only add contention, and CI has 2
# cores). OPTBENCH_TEST_THREADS=2 runs the suite with 2, which changes how reductions split their
# work: a test that holds only on one thread count fails then. (ATEN_CPU_CAPABILITY=default|avx2|
# avx512 likewise imitates other CPUs' kernels on one machine.)
TEST_THREADS = int(os.environ.get("OPTBENCH_TEST_THREADS", "1"))


@pytest.fixture(autouse=True)
def _test_threads():
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    yield
    torch.set_num_threads(n)


# The end-to-end tests (test_pipeline.py, test_add_optimizer.py) share one published run: a copy of
# the repository that ran PUBLISHED to its report, once a session. Each test copies it (mtimes and
# Snakemake's metadata included) and works on its copy.
REPO = Path(__file__).resolve().parent.parent

# One task, two optimizers, every per-pair measurement (tuning, finals, the defaults track, stability,
# step time) and checkpoints (the kill test resumes from one): small enough to run in a test.
PUBLISHED = dict(profile="tiny", size="smoke", device="cpu", threads=1, tasks=["quadratic-k1e2"],
                 optimizers=["sgd", "adam"], tuning={"trials": 5, "seeds": [100], "steps_fraction": 0.3},
                 final_seeds=[0, 1], defaults_track={"tasks": ["quadratic-k1e2"]},
                 stability={"tasks": ["quadratic-k1e2"], "scales": [0.1, 1.0, 10.0]},
                 steptime={"tasks": ["quadratic-k1e2"], "steps": 3, "warmup": 1, "rounds": 2}, checkpoint_every=2)
PUBLISHED_FILE = "tiny.yaml"
RUN = ("--configfile", PUBLISHED_FILE, "--cores", "2")


def source_files() -> list[str]:
    """The repository's tracked (and untracked, not ignored) files, without results or reports."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    return [name for name in files if (REPO / name).is_file() and not name.startswith("results/")
            and not (name.startswith("report/") and name.count("/") > 1)]


def copy_tree(dest: Path, src: Path = REPO, files=None) -> Path:
    """A fresh clone of the working tree at `src` (its source files only), with PUBLISHED's file."""
    for name in source_files() if files is None else files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / name, dest / name)
    (dest / PUBLISHED_FILE).write_text(yaml.safe_dump(PUBLISHED))
    return dest


class Repo:
    """A copy of the repository where commands run as a user types them (cwd = the copy, whose
    packages shadow the installed ones)."""
    def __init__(self, root: Path):
        self.root = root
        self.env = dict(os.environ, PYTHONPATH=str(root))
        exe = Path(sys.executable).with_name("snakemake")
        self.snakemake_cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]

    def cmd(self, *args, check=True):
        proc = subprocess.run(list(args), capture_output=True, text=True, cwd=self.root, env=self.env)
        assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
        return proc

    def snakemake(self, *args, check=True) -> str:
        proc = self.cmd(*self.snakemake_cmd, *args, check=check)
        return proc.stdout + proc.stderr

    def popen(self, *args):
        return subprocess.Popen([*self.snakemake_cmd, *args], cwd=self.root, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def copy(self, dest: Path) -> "Repo":
        shutil.copytree(self.root, dest, symlinks=True)
        return Repo(dest)


@pytest.fixture(scope="session")
def published(tmp_path_factory) -> Repo:
    """One uninterrupted run of PUBLISHED to its report (the default target)."""
    repo = Repo(copy_tree(tmp_path_factory.mktemp("published") / "repo"))
    repo.snakemake(*RUN)
    return repo
