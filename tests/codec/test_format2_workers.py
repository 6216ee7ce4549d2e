"""Format 2's lanes in worker processes: the same archive bytes as threads, decoding too; progress counts
every byte; a worker's error comes back as the same one-line error; a cancelled run leaves no process, and
neither does a parent killed without warning."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lnrnn.codec import StepGraph, compress, decompress, engine, unpack
from lnrnn.codec.container import pack
from lnrnn.codec.engine import Layout, run
from lnrnn.codec.errors import ContainerError
from lnrnn.codec.integer import network_for

DATA = bytes(np.random.default_rng(5).integers(0, 256, 700, dtype=np.uint8)) + b"lanes in processes " * 60


@pytest.mark.parametrize("adaptive", [False, True])
def test_processes_make_the_same_archive_as_threads_and_decode_it(
    graph: StepGraph, adaptive: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = {"block_size": 150, "lanes": 3}
    monkeypatch.setattr(engine, "PROCESS_MIN_BYTES", 1 << 40)
    threads = compress(DATA, graph, adaptive=adaptive, version=2, **layout).blob  # type: ignore[arg-type]
    monkeypatch.setattr(engine, "PROCESS_MIN_BYTES", 0)
    seen: list[int] = []
    processes = compress(DATA, graph, adaptive=adaptive, version=2, progress=seen.append, **layout)  # type: ignore[arg-type]
    assert processes.blob == threads
    assert sum(seen) == len(DATA)
    assert decompress(threads, graph) == DATA  # through worker processes (PROCESS_MIN_BYTES is 0)
    assert not mp.active_children()


def test_an_error_in_a_worker_lane_is_the_one_line_error(
    graph: StepGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "PROCESS_MIN_BYTES", 0)
    blob = compress(DATA, graph, adaptive=False, version=2, block_size=150, lanes=2).blob
    header, payloads = unpack(blob)
    last = bytearray(payloads[-1])  # a block of the second lane: decoded in a worker process
    last[len(last) // 2] ^= 0xFF
    broken = pack(header, [*payloads[:-1], bytes(last)])
    with pytest.raises(ContainerError) as err:
        decompress(broken, graph)
    assert "\n" not in str(err.value)
    assert not mp.active_children()


def test_a_cancelled_run_stops_its_workers(graph: StepGraph) -> None:
    network, fp32 = network_for(graph)
    calls = [0]

    class Cancelled(Exception):
        pass

    def checkpoint() -> None:
        calls[0] += 1
        if calls[0] == 20:
            raise Cancelled

    with pytest.raises(Cancelled):
        run(
            fp32,
            Layout(len(DATA), 100, 2),
            adaptive=True,
            data=DATA,
            encode=True,
            checkpoint=checkpoint,
            network=network,
            processes=True,
        )
    assert not mp.active_children()


UNGUARDED = """
import sys
from pathlib import Path

from lnrnn.codec import StepGraph, compress, decompress, engine

with open(sys.argv[2], "a") as marks:  # a side effect at the top level, as in any small script
    marks.write("ran\\n")
engine.PROCESS_MIN_BYTES = 0
graph = StepGraph.load(Path(sys.argv[1]), "fp32")
data = b"a script without a main guard " * 40
blob = compress(data, graph, block_size=300, lanes=2).blob
assert decompress(blob, graph) == data
print("round trip", len(blob))
"""


def test_a_script_without_a_main_guard_runs_once(model_dir: Path, tmp_path: Path) -> None:
    """A spawned worker would re-run the caller's script (side effects included) and fail there: the
    workers start with the main module hidden, so the script runs once and its archive round-trips."""
    script, marks = tmp_path / "unguarded.py", tmp_path / "marks.txt"
    script.write_text(UNGUARDED, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(model_dir), str(marks)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "round trip" in done.stdout
    assert marks.read_text(encoding="utf-8") == "ran\n"


KILLED_PARENT = """
import multiprocessing, sys, time
from lnrnn.codec import StepGraph, compress

graph = StepGraph.load(sys.argv[1])
data = bytes(range(32, 127)) * 2200  # 10 blocks of 20,000 bytes: each lane runs for 20,000 steps


def progress(n: int) -> None:
    workers = multiprocessing.active_children()
    if workers:
        print(workers[0].pid, flush=True)
        time.sleep(600)  # the caller kills this process here, mid-run


if __name__ == "__main__":
    compress(data, graph, block_size=20_000, lanes=2, progress=progress)
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its new parent to reap it has ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_parent_leaves_no_worker_running(model_dir: Path, tmp_path: Path) -> None:
    """SIGKILL gives the parent no chance to stop its workers: each notices at its next step that its
    parent is gone and ends, instead of coding the rest of its lane (20,000 steps) for nobody."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED_PARENT, encoding="utf-8")
    parent = subprocess.Popen(
        [sys.executable, str(script), str(model_dir)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    assert _running(worker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=30)
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    still = _running(worker)
    if still:
        os.kill(worker, signal.SIGKILL)
    assert not still, "the worker kept running after its parent was killed"
