#!/usr/bin/python3
"""bench/torch_transformer.py — bench_transformer.c's workload in PyTorch: one flow-matching training
step (torch_reference.py's step: source draw, slerp x_t/u_t, network, tangent projection, loss,
backward, clip_grad_norm_(1.0), AdamW(lr 1e-3, wd 0)) with the network built on
nn.TransformerEncoder the way plugins/network/transformer.c is with conditioning "add":

  h = Linear(K, W)(x) + pos[k, W] + temb[:, None],  temb = Linear(SiLU(Linear(sinusoid(t))))
  h = nn.TransformerEncoder(nn.TransformerEncoderLayer(W, heads, mlp_ratio*W, dropout=0,
        activation=gelu (tanh form), batch_first=True, norm_first=True), depth)(h)
  out = Linear(W, K)(LayerNorm(h))

Prints the median step time (wall, and process CPU time) and the share of CPU time in GEMM ops (aten::mm / addmm / bmm / baddbmm,
self time, from torch.autograd.profiler over one extra step). For benchmarking only (Debian's
python3-torch); nothing in the build or the tests uses this file.

  OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_transformer.py --threads 1
"""
import argparse
import functools
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402  (set_threads, header, timed, report, make_flow_step, n_params)

GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


class TorchTransformer(nn.Module):
    def __init__(self, k, K, width, depth, heads, mlp_ratio):
        super().__init__()
        self.width = width
        self.embed = nn.Linear(K, width)
        self.pos = nn.Parameter(torch.randn(k, width))
        self.temb0 = nn.Linear(width, width)
        self.temb1 = nn.Linear(width, width)
        layer = nn.TransformerEncoderLayer(width, heads, int(round(mlp_ratio * width)), dropout=0.0,
                                           activation=functools.partial(F.gelu, approximate="tanh"),
                                           batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, K)

    def sinusoid(self, t):
        half = self.width // 2
        f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        a = 1000.0 * t[:, None] * f[None, :]
        e = torch.zeros(t.shape[0], self.width)
        e[:, :half] = torch.sin(a)
        e[:, half:2 * half] = torch.cos(a)
        return e

    def forward(self, x, t):
        e = self.temb1(F.silu(self.temb0(self.sinusoid(t))))
        h = self.embed(x) + self.pos + e[:, None, :]
        return self.out(self.norm(self.enc(h)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--K", type=int, default=27)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp-ratio", type=float, default=4.0)
    args = ap.parse_args()
    ob = ref.set_threads(args.threads)
    ref.header(args, ob)
    torch.manual_seed(1)
    model = TorchTransformer(args.k, args.K, args.width, args.depth, args.heads, args.mlp_ratio)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    step = ref.make_flow_step(model, opt, "independent", "scipy", None)
    gen = torch.Generator().manual_seed(7)
    probs = torch.full((args.k, args.K), 1.0 / args.K)      # uniform random symbols, as bench_transformer
    batches = [ref.toy_batch(probs, args.batch, gen) for _ in range(args.warm + args.steps + 1)]
    it = iter(batches)
    cpu = []

    def timed_step():
        c0 = time.process_time()
        step(next(it))
        cpu.append((time.process_time() - c0) * 1e3)
    ts = ref.timed(timed_step, args.warm, args.steps)
    with torch.autograd.profiler.profile() as prof:
        step(next(it))
    tot = gemm = 0.0
    for ev in prof.key_averages():
        tot += ev.self_cpu_time_total
        if ev.key in GEMM_OPS:
            gemm += ev.self_cpu_time_total
    ref.report(f"torch transformer params {ref.n_params(model):8d}  step", ts,
               f"  CPU {statistics.median(cpu[args.warm:]):9.1f} ms  GEMM share {100.0 * gemm / max(tot, 1e-9):.1f}%"
               " (profiled step)")


if __name__ == "__main__":
    main()
