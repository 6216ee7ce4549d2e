"""The block loop both directions run: the same step calls with the same shapes, in the same order.

Layout. The input is cut into blocks of ``block_size`` bytes (the last one shorter). The blocks are split
into ``lanes`` contiguous groups (the first groups one block longer when they do not divide evenly). Each
lane is one thread with its own rows: all its blocks start together from the learned initial state with
BOS, and at step t every block longer than t is one row of the step call, in block order. Only the last
block of the input can be shorter, and it is the last row of the last lane, so the rows still running are
always a prefix. The decoder rebuilds the same layout from the header, so it makes the identical sequence
of step calls (ONNX Runtime's float results may depend on the batch shape; here the shape is the same).
With one intra-op thread each ``run`` computes in its calling thread and releases the GIL: two lanes use
two cores.

Block size, measured with the default int8 model (adaptive, two lanes, bits/byte of the information
content, no container): 8 KiB blocks cost +0.008 on the Tiny Shakespeare split and +0.010 on WikiText-2's
against 32 KiB (1.845 vs 1.836, 1.710 vs 1.700; network alone +0.003), because the adaptive statistics are
shared by the blocks of a lane and only the network restarts. On the first 1 MB of Tiny Shakespeare 16 KiB
blocks cost +0.005 (1.682 vs 1.677 with the container) and ran 19% faster (62 blocks = 31 rows per step
call instead of 16; ONNX Runtime's cost per row falls with the batch, 78 -> 69 us at 16 -> 32 rows). Small
inputs lose more: lcet10's 21 kB split is 1 block at 32 KiB (1.683) but 3 blocks in 2 lanes at 8 KiB (1.792).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lnrnn.codec.container import blocks_for
from lnrnn.codec.errors import CodecError, ContainerError
from lnrnn.codec.mixer import AdaptiveMixer, NeuralOnly, Predictor
from lnrnn.codec.model import StepGraph
from lnrnn.contract import BOS_ID

if TYPE_CHECKING:  # format 1's coder imports constriction, which format 2 does not need (no aarch64 wheel)
    from lnrnn.codec.coder import LaneDecoder, LaneEncoder
    from lnrnn.codec.integer.network import IntegerNetwork
    from lnrnn.codec.integer.workers import LaneProcess

DEFAULT_BLOCK_SIZE = 16 * 1024
DEFAULT_LANES = 2  # the most lanes ``lanes_for`` chooses: one per core of a small machine
# Below this many blocks per lane the default is one lane. Measured with format 2 and 16 KiB blocks: a step's
# time is a fixed part plus a part per row, and with few rows the fixed part dominates, so two lanes of 8
# rows took as long as one lane of 16 (256 KiB: 30.4 s vs 30.6 s) while one lane shares its context counts
# and match model over the whole input: on 128 KiB, python source -0.034, JSON -0.025, HTML -0.087
# bits/byte, English prose +0.003..+0.015 (the mixer's weights take the updates of more rows per step).
MIN_BLOCKS_PER_LANE = 8
# format 2: smaller inputs run their lanes as threads (see ``run``). Measured with the default model and
# 16 KiB blocks: starting a worker costs 0-2 s, and with two lanes of work processes won from 20 kB on
# (111 kB: 14.4 s instead of 39.8, two threaded lanes contend for the interpreter lock).
PROCESS_MIN_BYTES = 16 * 1024
Progress = Callable[[int], None]  # called with the number of bytes just coded (from the calling thread)


def lanes_for(length: int, block_size: int) -> int:
    """The default number of lanes for ``length`` bytes: up to ``DEFAULT_LANES``, each with at least
    ``MIN_BLOCKS_PER_LANE`` blocks (one lane below that)."""
    return max(1, min(DEFAULT_LANES, blocks_for(length, block_size) // MIN_BLOCKS_PER_LANE))


def no_checkpoint() -> None:
    """The default ``checkpoint``: nothing can cancel the run."""


@dataclass(frozen=True)
class Layout:
    """Which bytes are in which block and which blocks in which lane."""

    length: int
    block_size: int
    lanes: int

    @property
    def n_blocks(self) -> int:
        return blocks_for(self.length, self.block_size)

    def block_lengths(self) -> np.ndarray:
        lengths = np.full(self.n_blocks, self.block_size, dtype=np.int64)
        if self.n_blocks:
            lengths[-1] = self.length - self.block_size * (self.n_blocks - 1)
        return lengths

    def lane_blocks(self) -> list[range]:
        """Contiguous groups of block indices, one per lane (fewer lanes than asked for when few blocks)."""
        lanes = min(self.lanes, self.n_blocks)
        edges = [self.n_blocks * i // lanes for i in range(lanes + 1)] if lanes else [0]
        return [range(edges[i], edges[i + 1]) for i in range(lanes)]


@dataclass
class Lane:
    """One lane's blocks: their bytes as rows (filled as the decoder goes) and what the coder produced."""

    blocks: range
    lengths: np.ndarray  # int64 [R], non-increasing
    history: np.ndarray  # uint8 [R, block_size]
    nats: np.ndarray  # float64 [R]: -ln p of every coded byte, per block
    payloads: list[bytes] | None = None


@dataclass(frozen=True)
class Coded:
    """What one run produced: per block, its information content in nats and its payload (if encoded)."""

    layout: Layout
    nats: np.ndarray  # float64 [n_blocks]
    payloads: list[bytes] | None
    data: bytes | None  # decoded bytes (decode runs only)


def predictor(adaptive: bool, lane: Lane) -> Predictor:
    return AdaptiveMixer(lane.history, lane.lengths) if adaptive else NeuralOnly()


def run(
    graph: StepGraph,
    layout: Layout,
    *,
    adaptive: bool,
    data: bytes | None = None,
    payloads: list[bytes] | None = None,
    encode: bool = False,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] = no_checkpoint,
    network: IntegerNetwork | None = None,
    processes: bool | None = None,
) -> Coded:
    """Score (``data``), encode (``data`` and ``encode``) or decode (``payloads``) every block; with
    ``network``, format 2 (integer network and rANS, lnrnn.codec.integer) instead of format 1, whose lanes
    after the first run in worker processes (``processes``; None: when the input is at least
    ``PROCESS_MIN_BYTES``, below which starting a process costs more than it saves)."""
    all_lengths = layout.block_lengths()
    lanes = []
    for blocks in layout.lane_blocks():
        lengths = all_lengths[blocks.start : blocks.stop]
        history = np.zeros((len(blocks), layout.block_size), dtype=np.uint8)
        if data is not None:
            first = blocks.start * layout.block_size
            size = int(lengths.sum())
            history.reshape(-1)[:size] = np.frombuffer(data, dtype=np.uint8, count=size, offset=first)
        lanes.append(Lane(blocks, lengths, history, np.zeros(len(blocks))))
    if processes is None:
        processes = layout.length >= PROCESS_MIN_BYTES
    use_processes = network is not None and processes and len(lanes) > 1
    stop: Any = threading.Event()
    counters: Any = None  # the worker processes' progress
    if use_processes:
        from lnrnn.codec.integer import workers

        stop, counters = workers.stop_event(), workers.shared_counters(len(lanes) - 1)
    done = [0]
    lock = threading.Lock()

    def tick(n: int) -> None:
        with lock:
            done[0] += n

    def finished() -> int:
        return done[0] + (workers.total(counters) if counters is not None else 0)

    reported = [0]

    def lane_payloads(lane: Lane) -> list[bytes] | None:
        """The payloads of ``lane``'s blocks when decoding."""
        return payloads[lane.blocks.start : lane.blocks.stop] if payloads is not None else None

    def report(at_least: int) -> None:
        now = finished()
        if progress is not None and now - reported[0] >= at_least:
            progress(now - reported[0])
            reported[0] = now

    def work(lane: Lane, main: bool) -> None:
        def step_hook() -> None:
            if stop.is_set():
                raise _Stopped
            if main:
                checkpoint()
                report(4096)
                if any(worker.failed() for worker in lane_processes):
                    raise _Stopped  # its error is raised below

        mine = lane_payloads(lane)
        if network is not None:
            from lnrnn.codec.integer.lane import code_lane, integer_predictor

            model = integer_predictor(adaptive, lane.history, lane.lengths)
            code_lane(network, lane, model, encode=encode, payloads=mine, tick=tick, hook=step_hook)
        else:
            try:
                from lnrnn.codec.coder import LaneDecoder, LaneEncoder
            except ImportError as err:
                raise CodecError(
                    f"format 1 needs the constriction package ({err.msg}; it has no wheel for Linux on ARM): "
                    "use format 2 (lnrnn compress --format 2), which needs none"
                ) from None

            decoder = LaneDecoder(mine) if mine is not None else None
            encoder = LaneEncoder(lane.lengths) if encode else None
            _lane_loop(graph, lane, predictor(adaptive, lane), encoder, decoder, tick, step_hook)
            if encoder is not None:
                lane.payloads = encoder.finish(int(lane.lengths.max()))
        if main and progress is not None:
            while any(t.is_alive() for t in threads):  # keep the bar moving while the others finish
                for t in threads:
                    t.join(0.2)
                report(1)
            report(1)

    errors: list[BaseException] = []

    def guarded(lane: Lane) -> None:
        try:
            work(lane, False)
        except _Stopped:
            pass
        except BaseException as err:  # re-raised by the calling thread
            errors.append(err)
            stop.set()

    threads: list[threading.Thread] = []
    lane_processes: list[LaneProcess] = []
    if use_processes:
        assert network is not None
        for slot, lane in enumerate(lanes[1:]):
            job = workers.LaneJob(network, lane, adaptive, encode, lane_payloads(lane), counters, slot, stop)
            lane_processes.append(workers.LaneProcess(job))
    else:
        threads = [threading.Thread(target=guarded, args=(lane,), daemon=True) for lane in lanes[1:]]
    if network is not None:  # one BLAS thread per lane: the lanes are the parallelism (exact either way)
        from lnrnn.codec.integer import one_blas_thread

        blas = one_blas_thread()
    for t in threads:
        t.start()
    failed = False
    try:
        if lanes:
            work(lanes[0], True)
    except _Stopped:
        pass  # another lane failed and set ``stop``: its own error is raised below
    except BaseException:
        failed = True
        stop.set()
        raise
    finally:
        for t in threads:
            t.join()
        for worker in lane_processes:
            if failed:
                worker.kill()
                continue
            err = worker.join(lambda: report(1))
            if err is not None:
                errors.append(err)
                stop.set()
        if lane_processes and not failed:
            report(1)
        if network is not None:
            blas.restore()
    if errors:
        raise errors[0]
    nats = np.concatenate([lane.nats for lane in lanes]) if lanes else np.zeros(0)
    coded_payloads = [p for lane in lanes for p in (lane.payloads or [])] if encode else None
    decoded = None
    if payloads is not None:
        decoded = b"".join(lane.history.reshape(-1)[: int(lane.lengths.sum())].tobytes() for lane in lanes)
    return Coded(layout, nats, coded_payloads, decoded)


class _Stopped(Exception):
    """Another lane failed: this one stops at its next step."""


def _lane_loop(
    graph: StepGraph,
    lane: Lane,
    model: Predictor,
    encoder: LaneEncoder | None,
    decoder: LaneDecoder | None,
    tick: Callable[[int], None],
    hook: Callable[[], None],
) -> None:
    lengths, history = lane.lengths, lane.history
    rows = len(lengths)
    active = np.searchsorted(-lengths, -np.arange(int(lengths.max())), side="left")  # rows longer than t
    state = graph.initial_state(rows)
    tokens = np.full(rows, BOS_ID, dtype=np.int64)
    row_ids = np.arange(rows)
    k = rows
    for t in range(int(lengths.max())):
        hook()
        if active[t] < k:
            k = int(active[t])
            state = np.ascontiguousarray(state[:, :k])
            tokens = tokens[:k]
        logp, state = graph.step(tokens, state)
        probs = model.predict(t, k, logp)
        if decoder is not None:
            try:
                history[:k, t] = decoder.decode(probs)
            except Exception as err:  # constriction refuses words no encoder can produce
                raise ContainerError(f"corrupted payload in block {lane.blocks.start}: {err}") from None
        symbols = history[:k, t]
        lane.nats[:k] -= np.log(probs[row_ids[:k], symbols].astype(np.float64))
        if encoder is not None:
            encoder.push(t, probs, symbols)
        model.update(t, k, symbols)
        tokens = symbols.astype(np.int64)
        tick(k)
