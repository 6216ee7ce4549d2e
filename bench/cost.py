"""Work per scored byte of each scoring method: weight bytes read per step and FLOPs, and the roofline bound.

Counting (a multiply-add = 2 FLOPs; V = 257, E = H, gates g = 3 GRU / 4 LSTM / 2 MGU):

* recurrent weights W_h: g*H*H, used every step by every method;
* input weights W_x: g*E*H. PyTorch eager (hoisted) runs them as one GEMM over all T before the loop and the
  fast Scan replaces them with a [V, g*H] table (one row gathered per step); the step graph and the generic
  Scan multiply by W_x every step;
* output layer: V*E, a GEMM over all T after the loop (eager, fast Scan), every step otherwise.

Weights read per step = the matrices used inside the time loop (fp32: 4 bytes, int8: 1 byte); at batch B one
read serves B bytes. The bound per byte is max(bytes / memory bandwidth, FLOPs / GEMM FLOP/s), both measured
in the same run (``bench.roofline``); achieved / bound = bound time / measured time (1.0 = on the roofline).
"""

from __future__ import annotations

from typing import Any

from lnrnn.contract import VOCAB_SIZE

GATES = {"gru": 3, "lstm": 4, "mgu": 2}
IN_LOOP_ALL = ("ort-step-loop", "ort-generic-scan")  # methods that run the whole step inside the loop


def per_byte(cell: str, hidden: int, method: str, batch: int) -> dict[str, float]:
    g, h, v = GATES[cell], hidden, VOCAB_SIZE
    recurrent, inputs, head = g * h * h, g * h * h, v * h
    elementwise = 12 * g * h  # layer norms, gates, log-softmax: small next to the matrices
    if method == "ort-fast-scan" or method == "ort-fast-scan-int8":
        flops = 2 * (recurrent + head) + elementwise
    else:
        flops = 2 * (recurrent + inputs + head) + elementwise
    in_loop = recurrent + (inputs + head if method in IN_LOOP_ALL else 0)
    weight_bytes = (1 if method.endswith("int8") else 4) * in_loop
    return {
        "weight_bytes_per_step": weight_bytes,
        "weight_bytes_per_byte": weight_bytes / batch,
        "flops_per_byte": flops,
    }


def roofline_row(row: dict[str, Any], bandwidth_gbs: float, gemm_gflops: float) -> dict[str, float]:
    """Bound (bytes/s) implied by this machine's bandwidth and GEMM rate, and the achieved fraction."""
    cost = per_byte(row["cell"], row["hidden"], row["method"], row["batch"])
    t_mem = cost["weight_bytes_per_byte"] / (bandwidth_gbs * 1e9)
    t_flop = cost["flops_per_byte"] / (gemm_gflops * 1e9)
    bound_t = max(t_mem, t_flop)
    return {
        **cost,
        "bound": "memory" if t_mem >= t_flop else "compute",
        "bound_bytes_per_s": 1.0 / bound_t,
        "achieved_over_bound": row["bytes_per_s"] * bound_t,
        "gflop_per_s": row["bytes_per_s"] * cost["flops_per_byte"] / 1e9,
        "weight_gb_per_s": row["bytes_per_s"] * cost["weight_bytes_per_byte"] / 1e9,
    }


def sequence_bound(
    cell: str, layers: int, hidden: int, embedding: int, tokens: int, gemv_gflops: float, gemm_gflops: float
) -> dict[str, float]:
    """The compute bound of one sequence-graph call at batch 1 over ``tokens`` tokens (the fast Scan).

    The graph runs one Scan per layer. Inside each Scan only the recurrent product h @ W_h is a
    matrix-vector product (batch 1, GEMV rate); everything else covers all T tokens at once (GEMM rate):
    layer 1's input product is a table row per token (no FLOPs), each higher layer's input product is one
    GEMM over the lower layer's outputs, and the output layer (tied embedding, E x V, after an H -> E
    projection when E != H) is one GEMM. Layer norms, gates and the log-softmax are ~12 g H FLOPs per token
    per layer, under 1% here, and left out.
    """
    g, h, e, v = GATES[cell], hidden, embedding, VOCAB_SIZE
    recurrent = layers * 2 * g * h * h  # FLOPs per token at GEMV rate
    hoisted = (layers - 1) * 2 * g * h * h + 2 * e * v + (2 * h * e if e != h else 0)  # per token, GEMM rate
    us_per_token = 1e6 * (recurrent / (gemv_gflops * 1e9) + hoisted / (gemm_gflops * 1e9))
    return {
        "recurrent_flops_per_token": recurrent,
        "hoisted_flops_per_token": hoisted,
        "gemv_gflop_per_s": gemv_gflops,
        "gemm_gflop_per_s": gemm_gflops,
        "us_per_token": us_per_token,
        "tokens": tokens,
        "bound_ms": tokens * us_per_token / 1000,
    }
