#!/usr/bin/python3
"""bench/torch_cnn1d.py — bench_cnn1d.c's workload in plain PyTorch: the dilated residual 1-D CNN
of plugins/network/cnn1d.c (written here from its documented maths, channels first as torch's
Conv1d wants) at L = 1024, d+1 = 4, batch 64, kernel 9, dilations 1,1,4,16,64 per stack.

  temb = ReLU(Linear([sin 2 pi W t, cos 2 pi W t]))      W: H/2 fixed N(0, 30^2) frequencies
  feat = ReLU(conv_in(x))
  per layer i: h = LayerNorm_C(feat + Dense_i(temb)); feat = feat + ReLU(conv_i(h))
  out = conv1x1(ReLU(conv1x1(feat)))

Figures (median wall and process-CPU ms after warm-up): one training step (zero_grad, forward, MSE
against a fixed random target, backward, AdamW with torch defaults lr 1e-3 wd 0.01) and one forward
under torch.no_grad() with t = 0.5 for every row (what a sampler's field evaluation runs).
For benchmarking only (Debian python3-torch); nothing in the build or the tests uses it.

  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_cnn1d.py --threads 2 --hidden 64 --layers 5
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import header, set_threads  # noqa: E402


class CNN1D(nn.Module):
    def __init__(self, hidden, stacks, d1=4, kernel=9, dilations=(1, 1, 4, 16, 64), scale=30.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("freq", torch.randn(hidden // 2, generator=g) * scale)
        self.temb = nn.Linear(2 * (hidden // 2), hidden)
        half = (kernel - 1) // 2
        self.conv_in = nn.Conv1d(d1, hidden, kernel, padding=half)
        dil = [d for d in dilations for _ in range(stacks)]
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, dilation=d, padding=half * d) for d in dil)
        self.dense = nn.ModuleList(nn.Linear(hidden, hidden) for _ in dil)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in dil)
        self.final0 = nn.Conv1d(hidden, hidden, 1)
        self.final1 = nn.Conv1d(hidden, d1, 1)

    def forward(self, x, t):                       # x: [n, L, d+1] (fisherflow's layout), t: [n]
        a = 2 * math.pi * t[:, None] * self.freq[None, :]
        e = F.relu(self.temb(torch.cat([torch.sin(a), torch.cos(a)], dim=1)))
        feat = F.relu(self.conv_in(x.transpose(1, 2)))
        for conv, dense, norm in zip(self.convs, self.dense, self.norms):
            h = feat + dense(e)[:, :, None]
            h = norm(h.transpose(1, 2)).transpose(1, 2)
            feat = feat + F.relu(conv(h))
        return self.final1(F.relu(self.final0(feat))).transpose(1, 2)


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", default="64,128")
    ap.add_argument("--layers", default="5,20")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--L", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warm", type=int, default=1)
    ap.add_argument("--fwd", type=int, default=5)
    args = ap.parse_args()
    ob = set_threads(args.threads)
    header(args, ob)
    print(f"  mkldnn available {torch.backends.mkldnn.is_available()}")
    torch.manual_seed(3)
    n, L = args.batch, args.L
    for H in (int(v) for v in args.hidden.split(",")):
        for layers in (int(v) for v in args.layers.split(",")):
            net = CNN1D(H, layers // 5)
            opt = torch.optim.AdamW(net.parameters())
            x = torch.randn(n, L, 4) * 0.5
            target = torch.randn(n, L, 4)
            t = torch.rand(n)
            loss = [0.0]

            def step():
                opt.zero_grad(set_to_none=False)
                l = F.mse_loss(net(x, t), target)
                l.backward()
                opt.step()
                loss[0] = l.item()

            def fwd():
                with torch.no_grad():
                    net(x, torch.full((n,), 0.5)).sum().item()

            res = {}
            for name, fn, reps in (("step", step, args.steps), ("fwd", fwd, args.fwd)):
                for _ in range(args.warm):
                    fn()
                w, c = zip(*(timed(fn) for _ in range(reps)))
                res[name] = (statistics.median(w), statistics.median(c))
            nparams = sum(p.numel() for p in net.parameters())
            print(f"torch hidden {H:3d} layers {layers:2d} params {nparams:8d} | step {res['step'][0]:8.1f} ms "
                  f"(cpu {res['step'][1]:8.1f}) | fwd no-grad {res['fwd'][0]:7.1f} ms (cpu {res['fwd'][1]:7.1f}) "
                  f"| loss {loss[0]:.4f}", flush=True)


if __name__ == "__main__":
    main()
