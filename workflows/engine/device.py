"""The run's device: the one module of the engine that names `torch.cuda`.

`get(where)` gives the `Device` of a device string or `torch.device`: `Cpu` or `Cuda`, or, inside
`simulated()`, a `Simulated` CUDA device for tests. What it does for the harness and the
measurements:

- `timer()`: a `StepTimer` around optimizer.step(): perf_counter on CPU; on CUDA a pair of events
  recorded on the current stream *of the run's device* (with `cuda:1`, cuda:1's stream, whatever
  the current device is), read with one synchronisation when the times are wanted;
- `wall_clock()`: perf_counter after a synchronisation, so a step's wall time includes the
  kernels it queued (the only host synchronisation a step needs); `read(values)`: the same
  synchronisation, with the few numbers a step's checks left on the device copied back;
- `reset_peak_memory()` / `peak_memory()`: the peak allocated bytes since the reset, the reset
  after a `gc.collect()` (a previous run's model left in a garbage cycle is freed first and not
  counted in this run's peak); None on CPU, where it is not measurable;
- `rng_state()` / `set_rng_state()`: the CPU generator's state and the device's;
- `configure(fp32_precision, deterministic)`: "ieee" makes fp32 IEEE fp32 in cuBLAS matmuls and
  cuDNN convolutions and RNNs (torch 2.13 runs cuDNN convolutions in TF32 by default:
  `torch.backends.cudnn.conv.fp32_precision == "tf32"`), "tf32" allows TF32 there; `deterministic`
  selects deterministic algorithms (`torch.use_deterministic_algorithms`, cuDNN's deterministic
  mode, no cuDNN benchmarking, `CUBLAS_WORKSPACE_CONFIG=:4096:8`, which cuBLAS reads when the
  process's first handle is made). On CPU both are no-ops: the CPU kernels are IEEE fp32 and
  deterministic for a fixed thread count already, and the numbers of a CPU run do not move;
- `facts()`: what the environment block of every record states about the device.

The simulated device keeps tensors on the CPU but runs the CUDA control flow: every event,
record, synchronisation, peak-memory reset and read, RNG save and restore and configuration goes
through the same `Cuda` methods, down to the primitives that would call `torch.cuda`, which it logs
in `Recorder.calls` instead. It reports no GPU numbers: its peak memory is None and its facts say
"simulated" (every record's environment block has `simulated: true`, and aggregation refuses such a
record unless it runs simulated too: `simulated_refusal`). Two ways in: `simulated()`, a context
manager for tests in this process; and OPTBENCH_SIMULATED_CUDA=<devices> in the environment, which a
Snakemake run and the jobs it spawns inherit: `get` of a CUDA device gives a simulated one and
`cuda_devices` counts the simulated devices, CUDA_VISIBLE_DEVICES applied to them as CUDA applies
it, so the preflight, the GPU pool and a per-GPU shard run on a CPU machine (tests/test_multi_gpu.py).
"""
from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import os
import time

import torch

FP32_PRECISIONS = ("ieee", "tf32")
CUBLAS_WORKSPACE_CONFIG = ":4096:8"     # the setting cuBLAS's reproducibility notes name
JOBS_PER_DEVICE_VARIABLE = "OPTBENCH_JOBS_PER_DEVICE"   # set by whoever shares a device between jobs
SIMULATED_VARIABLE = "OPTBENCH_SIMULATED_CUDA"   # a number of simulated CUDA devices: tests and CI only

_RECORDERS: list["Recorder"] = []
_CONFIGURED: dict = {"fp32_precision": None, "deterministic": None}   # the process's last `configure`


def cuda_devices() -> int:
    """How many CUDA devices this process sees: 0 without CUDA (a CPU build of torch, no driver, or
    CUDA_VISIBLE_DEVICES empty); under OPTBENCH_SIMULATED_CUDA, the simulated ones it leaves visible."""
    simulated_count = simulated_devices()
    if simulated_count is not None:
        return visible(simulated_count)
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def simulated_devices() -> int | None:
    """How many CUDA devices OPTBENCH_SIMULATED_CUDA simulates; None where it is unset (or empty)."""
    value = os.environ.get(SIMULATED_VARIABLE, "")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{SIMULATED_VARIABLE}={value!r}; valid: a number of simulated CUDA devices "
                         f"(1, 2, ...), or unset for the real ones")
    return int(value)


def visible(count: int) -> int:
    """How many of `count` devices CUDA_VISIBLE_DEVICES leaves visible, by CUDA's rule: the listed
    indices in order, up to the first that names no device (here a repeated index ends the list too:
    one device is never two); all where it is unset."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return count
    seen = []
    for item in listed.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) >= count or int(item) in seen:
            break
        seen.append(int(item))
    return len(seen)


def simulated_refusal(environment: dict) -> str | None:
    """Why a record whose environment block is `environment` must not be aggregated here, or None:
    a record made on the simulated device holds CPU timings under a CUDA device's name, so only a
    process that simulates too (OPTBENCH_SIMULATED_CUDA set: a test) may table it; anywhere else it
    would read as a GPU result."""
    if not environment.get("simulated") or simulated_devices() is not None:
        return None
    return (f"made on the simulated CUDA device ({SIMULATED_VARIABLE} was set), not a GPU: its timings "
            f"are the CPU's; it is tabled only by a run with {SIMULATED_VARIABLE} set")


def check(fp32_precision: str, deterministic) -> None:
    if fp32_precision not in FP32_PRECISIONS:
        raise ValueError(f"fp32_precision {fp32_precision!r}; valid: {', '.join(FP32_PRECISIONS)}")
    if not isinstance(deterministic, bool):
        raise ValueError(f"deterministic={deterministic!r}; valid: true, false")


class StepTimer:
    """Times optimizer.step() alone: events around it on an accelerator, perf_counter on CPU.

    `seconds` holds every time read so far (events are read, with one synchronisation, by
    `times()`), so a checkpoint saves `times()` and a resumed run puts it back into `seconds`. A
    step that raises is not timed."""

    def __init__(self, device):
        self.device = get(device)
        self.seconds: list[float] = []
        self.pairs = []     # (start, end) events not read yet

    def __enter__(self):
        if self.device.events:
            self._start, self._end = self.device.event(), self.device.event()
            self.device.record(self._start)
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            return
        if self.device.events:
            self.device.record(self._end)
            self.pairs.append((self._start, self._end))
        else:
            self.seconds.append(time.perf_counter() - self._t0)

    def times(self) -> list[float]:
        if self.pairs:
            self.device.synchronize()
            self.seconds += [s.elapsed_time(e) / 1e3 for s, e in self.pairs]
            self.pairs = []
        return list(self.seconds)


class Cpu:
    """The CPU: no events, nothing to synchronise, no peak memory, one generator."""
    events = False
    simulated = False

    def __init__(self, where: torch.device):
        self.where = where          # the device the run names
        self.tensors = where        # the device its tensors are on

    def timer(self) -> StepTimer:
        return StepTimer(self)

    def synchronize(self) -> None:
        pass

    def wall_clock(self) -> float:
        self.synchronize()
        return time.perf_counter()

    def read(self, values: torch.Tensor) -> list:
        """A 1-d tensor's values on the host, after a synchronisation: a step's one synchronisation,
        which its wall clock reads after and its checks' values come back with (the copy of a few
        numbers from a drained device waits for nothing)."""
        self.synchronize()
        return values.tolist()

    def reset_peak_memory(self) -> None:
        pass

    def peak_memory(self) -> int | None:
        return None

    def rng_state(self) -> tuple:
        """(CPU generator state, device generator state or None)."""
        return torch.get_rng_state(), None

    def set_rng_state(self, state: tuple) -> None:
        cpu, _ = state
        torch.set_rng_state(cpu)

    def configure(self, fp32_precision: str = "ieee", deterministic: bool = True) -> None:
        check(fp32_precision, deterministic)
        _CONFIGURED.update(fp32_precision=fp32_precision, deterministic=deterministic)

    def facts(self) -> dict:
        """The settings the run asked for (None: never configured) and where the device came from."""
        return {"cuda": None, "device": self.where.type, **_CONFIGURED,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "jobs_per_device": jobs_per_device()}


class Cuda(Cpu):
    """A CUDA device. The control flow is in the public methods; the `_` primitives are the only
    calls into `torch.cuda` (the simulated device replaces them)."""
    events = True

    def synchronize(self) -> None:
        self._synchronize()

    def event(self):
        return self._event()

    def record(self, event) -> None:
        event.record(self._stream())

    def reset_peak_memory(self) -> None:
        gc.collect()
        self._reset_peak()

    def peak_memory(self) -> int | None:
        return self._max_allocated()

    def rng_state(self) -> tuple:
        return torch.get_rng_state(), self._get_rng()

    def set_rng_state(self, state: tuple) -> None:
        cpu, dev = state
        torch.set_rng_state(cpu)
        if dev is not None:
            self._set_rng(dev)

    def configure(self, fp32_precision: str = "ieee", deterministic: bool = True) -> None:
        super().configure(fp32_precision, deterministic)
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
        self._apply(fp32_precision, deterministic)

    def facts(self) -> dict:
        return {**super().facts(), "device": "cuda", **self._facts()}

    # the primitives: torch.cuda itself
    def _synchronize(self):
        torch.cuda.synchronize(self.where)

    def _event(self):
        return torch.cuda.Event(enable_timing=True)

    def _stream(self):
        return torch.cuda.current_stream(self.where)

    def _reset_peak(self):
        torch.cuda.reset_peak_memory_stats(self.where)

    def _max_allocated(self):
        return torch.cuda.max_memory_allocated(self.where)

    def _get_rng(self):
        return torch.cuda.get_rng_state(self.where)

    def _set_rng(self, state):
        torch.cuda.set_rng_state(state, self.where)

    def _apply(self, fp32_precision: str, deterministic: bool) -> None:
        torch.backends.cuda.matmul.fp32_precision = fp32_precision
        torch.backends.cudnn.conv.fp32_precision = fp32_precision
        torch.backends.cudnn.rnn.fp32_precision = fp32_precision
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = False if deterministic else torch.backends.cudnn.benchmark

    def _facts(self) -> dict:
        props = torch.cuda.get_device_properties(self.where)
        return {"cuda": torch.version.cuda, "device_name": torch.cuda.get_device_name(self.where),
                "device_memory_bytes": props.total_memory, "device_capability": f"{props.major}.{props.minor}",
                "cudnn": torch.backends.cudnn.version(), "driver": driver_version(),
                "fp32_precision_in_effect": {"matmul": torch.backends.cuda.matmul.fp32_precision,
                                   "cudnn_conv": torch.backends.cudnn.conv.fp32_precision,
                                   "cudnn_rnn": torch.backends.cudnn.rnn.fp32_precision},
                "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
                "cudnn_deterministic": torch.backends.cudnn.deterministic,
                "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}


def driver_version() -> str | None:
    """The NVIDIA driver's version through NVML (the nvidia-ml-py package), None where it is not
    installed or finds no driver."""
    try:
        import pynvml
        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else version
    except Exception:   # no NVML, no driver: the fact is unknown, not an error of the run
        return None


def jobs_per_device() -> int | None:
    """How many jobs shared the device, where the scheduler states it (OPTBENCH_JOBS_PER_DEVICE);
    None: not known."""
    value = os.environ.get(JOBS_PER_DEVICE_VARIABLE)
    return int(value) if value and value.isdigit() else None


class Recorder:
    """The calls the simulated devices made, in order: (what, device, *details); with `keep`, only
    the last `keep` (a process simulating under OPTBENCH_SIMULATED_CUDA trains for thousands of steps)."""

    def __init__(self, keep: int | None = None):
        self.calls = collections.deque(maxlen=keep) if keep else []
        self._ids = itertools.count()

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def count(self, what: str) -> int:
        return sum(c[0] == what for c in self.calls)


class SimulatedEvent:
    """A CUDA event's interface, on the host clock."""

    def __init__(self, recorder: Recorder):
        self.recorder, self.id, self.t = recorder, next(recorder._ids), None

    def record(self, stream: "SimulatedStream") -> None:
        self.t = time.perf_counter()
        self.recorder.calls.append(("event_record", str(stream.device), self.id))

    def elapsed_time(self, end: "SimulatedEvent") -> float:
        self.recorder.calls.append(("event_elapsed", None, self.id, end.id))
        return (end.t - self.t) * 1e3


class SimulatedStream:
    def __init__(self, device: torch.device):
        self.device = device


class Simulated(Cuda):
    """A CUDA device whose tensors are on the CPU and whose `torch.cuda` primitives are logged."""
    simulated = True

    def __init__(self, where: torch.device, recorder: Recorder):
        super().__init__(where)
        self.tensors = torch.device("cpu")
        self.recorder = recorder

    def _log(self, what: str, *details):
        self.recorder.calls.append((what, str(self.where), *details))

    def _synchronize(self):
        self._log("synchronize")

    def _event(self):
        self._log("event_create")
        return SimulatedEvent(self.recorder)

    def _stream(self):
        return SimulatedStream(self.where)

    def _reset_peak(self):
        self._log("peak_reset")

    def _max_allocated(self):
        self._log("peak_read")
        return None

    def _get_rng(self):
        self._log("rng_save")
        return torch.zeros(1, dtype=torch.uint8)

    def _set_rng(self, state):
        self._log("rng_restore")

    def _apply(self, fp32_precision: str, deterministic: bool) -> None:
        self._log("configure", fp32_precision, deterministic)

    def _facts(self) -> dict:
        return {"device_name": "simulated", "simulated": True}


@contextlib.contextmanager
def simulated():
    """Inside, `get` of a CUDA device gives a `Simulated` one; yields the `Recorder` of its calls."""
    recorder = Recorder()
    _RECORDERS.append(recorder)
    try:
        yield recorder
    finally:
        _RECORDERS.remove(recorder)


_PROCESS_RECORDER = Recorder(keep=10_000)   # the calls of OPTBENCH_SIMULATED_CUDA's devices


def get(where) -> Cpu:
    """The `Device` of a device string, `torch.device` or `Device`: inside `simulated()` or under
    OPTBENCH_SIMULATED_CUDA a CUDA device is a `Simulated` one (under the variable, one of the
    devices it leaves visible: ValueError for another, as CUDA refuses it)."""
    if isinstance(where, Cpu):
        return where
    where = torch.device(where)
    if where.type != "cuda":
        return Cpu(where)
    if _RECORDERS:
        return Simulated(where, _RECORDERS[-1])
    count = simulated_devices()
    if count is None:
        return Cuda(where)
    shown = visible(count)
    if (where.index or 0) >= shown:
        raise ValueError(f"device {str(where)!r}: {simulation()} leaves {shown} simulated device(s); valid: "
                         + ", ".join(["cpu"] + (["cuda"] if shown else []) + [f"cuda:{i}" for i in range(shown)]))
    return Simulated(where, _PROCESS_RECORDER)


def simulation() -> str | None:
    """The simulation in effect, as a user would set it (for messages); None without one."""
    count = simulated_devices()
    if count is None:
        return None
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{SIMULATED_VARIABLE}={count}" + (f" with CUDA_VISIBLE_DEVICES={listed}" if listed is not None else "")
