#!/usr/bin/python3
"""bench/torch_reference.py — the workloads of bench_mlp.c and bench_step.c written in plain PyTorch
(float32, autograd, torch.optim.AdamW), as the Fisher-Flow authors' code would run them on a CPU, so
fisherflow's figures can be set against PyTorch's on the same machine in the same session.

For benchmarking only: needs Debian's python3-torch (1.13.1), python3-numpy, python3-scipy and,
for --ot-solver pot, python3-pot. Nothing in the build or the tests uses this file.

Workloads (each prints a median of per-repetition wall times after warm-up):
  mlp     4 x Linear(512, 512), LeakyReLU(0.01) between them, MSE against a fixed target, batch 512;
          zero_grad + forward + backward + AdamW (torch defaults: lr 1e-3, wd 0.01) — bench_mlp.c.
  step    one flow-matching training step on the (Delta^K)^4 toy (docs/PAPER_PROTOCOLS.md §2, MATH.md "Training"):
          x1 = sqrt(one-hot); x0 = |z|/||z|| per position; t ~ U[0,1) per sample; optional exact
          minibatch OT re-pairing for C_ij = sum_k arccos(<x1_i,k, x0_j,k>)^2; closed-form slerp
          x_t and u_t; the BMLP (plugins/network/bmlp.c); tangent projection v - <x,v>x;
          loss = mean_batch sum_{k,K} (Pv - u)^2; backward; clip_grad_norm_(1.0); AdamW(lr 1e-3,
          wd 0) — bench_step.c. The one-hot batch is drawn before the clock starts (as there).
  sample  100 Riemannian-Euler steps x <- fold(exp_x(h P_x v(x, t))), t_n = n/100, for 2048 source
          draws under torch.no_grad(), then p = x*x — bench_step.c's sampling figure.
  ot      the OT coupling alone (cost matrix + assignment), n = 512 and 2048, k = 4, K = 100 —
          the sizes of bench_ot.c.

Threads: --threads N sets torch.set_num_threads(N) and OpenBLAS's thread count (through ctypes on
the libopenblas.so.0 torch has loaded). Run it under OPENBLAS_NUM_THREADS=N OMP_NUM_THREADS=N too.

  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_reference.py --threads 1
"""
import argparse
import ctypes
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- environment --------------------------------------------------------------------------------

def openblas():
    """The OpenBLAS torch links (Debian: libblas.so.3 -> openblas-pthread), or None."""
    for name in ("libopenblas.so.0", "libopenblas.so"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return lib
        except OSError:
            continue
    return None


def set_threads(n):
    torch.set_num_threads(n)
    ob = openblas()
    if ob is not None:
        ob.openblas_set_num_threads(n)
    return ob


def header(args, ob):
    print(f"torch_reference: torch {torch.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    for line in torch.__config__.show().splitlines():
        line = line.strip()
        if any(s in line for s in ("MKL", "LAPACK", "CPU capability", "OpenMP")) and "BLAS_INFO" not in line:
            print("  config:", line)
        if "BLAS_INFO" in line:
            for item in line.split(", "):
                if item.split("=")[0].strip() in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP"):
                    print("  config:", item.strip())
    if ob is not None:
        print(f"  OpenBLAS: {ob.openblas_get_config().decode()}, core {ob.openblas_get_corename().decode()}, "
              f"threads {ob.openblas_get_num_threads()}")
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_", "GOTO"))}
    print(f"  torch threads {torch.get_num_threads()}, interop {torch.get_num_interop_threads()}; env {env or '{}'}")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def med(ts):
    return statistics.median(ts)


def timed(fn, warm, reps):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return ts


def report(label, ts, extra=""):
    s = sorted(ts)
    print(f"{label}: median {med(ts):9.2f} ms  (min {s[0]:9.2f}, max {s[-1]:9.2f}, {len(ts)} reps){extra}",
          flush=True)


# ---- (a) the 4-layer MLP of bench_mlp.c -----------------------------------------------------------

def bench_mlp(args):
    torch.manual_seed(1)
    W, B = args.width, args.batch
    layers = []
    for l in range(4):
        layers.append(nn.Linear(W, W))
        if l < 3:
            layers.append(nn.LeakyReLU(0.01))
    net = nn.Sequential(*layers)
    with torch.no_grad():                      # bench_mlp.c: U(-1/22.6, 1/22.6) for every tensor
        for p in net.parameters():
            p.uniform_(-1 / 22.6, 1 / 22.6)
    opt = torch.optim.AdamW(net.parameters())  # lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.01
    x, y = torch.randn(B, W), torch.randn(B, W)
    last = {}

    def step():
        opt.zero_grad(set_to_none=False)       # bench_mlp.c zeroes the gradient buffers
        loss = F.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        last["loss"] = loss.item()

    ts = timed(step, 5, args.mlp_steps)
    nflop = 2.0 * B * W * W * 11               # the 11 GEMMs (no dx for the data input)
    report(f"mlp   threads {args.threads} width {W} batch {B}", ts,
           f"  {nflop / med(ts) * 1e-6:.1f} GFLOP/s, loss {last['loss']:.4f}")


# ---- (b) the toy flow-matching step ---------------------------------------------------------------

class BMLP(nn.Module):
    """plugins/network/bmlp.c: time embedding Linear(1 -> emb) of raw t, concatenated to the input of
    every block; block 0: k*K -> hidden, blocks 1..depth-2: hidden -> hidden with a residual,
    last block: hidden -> k*K; LeakyReLU after every block but the last."""

    def __init__(self, k, K, hidden=512, depth=4, emb=64, slope=0.01):
        super().__init__()
        self.k, self.K, self.slope = k, K, slope
        self.temb = nn.Linear(1, emb)
        dims = [k * K] + [hidden] * (depth - 1) + [k * K]
        self.blocks = nn.ModuleList(nn.Linear(dims[i] + emb, dims[i + 1]) for i in range(depth))

    def forward(self, x, t):
        n = x.shape[0]
        h = x.reshape(n, self.k * self.K)
        e = self.temb(t.reshape(n, 1))
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            y = block(torch.cat([h, e], dim=1))
            if i == last:
                h = y
                break
            y = F.leaky_relu(y, self.slope)
            h = y if i == 0 else h + y
        return h.reshape(n, self.k, self.K)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def tangent(x, v):
    return v - (x * v).sum(-1, keepdim=True) * x


def uniform_orthant(n, k, K):
    z = torch.randn(n, k, K).abs()
    return z / z.norm(dim=-1, keepdim=True)


def slerp(x0, x1, t):
    """x_t = [sin((1-t)th) x0 + sin(t th) x1]/sin th, u_t = th [cos(t th) x1 - cos((1-t)th) x0]/sin th,
    per position, t of shape [n] (MATH.md)."""
    dot = (x0 * x1).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    th = torch.acos(dot)
    s = torch.sin(th).clamp_min(1e-7)          # th -> 0 never happens for orthant draws vs vertices
    t = t.reshape(-1, 1, 1)
    a, b = (1 - t) * th, t * th
    xt = (torch.sin(a) * x0 + torch.sin(b) * x1) / s
    ut = th * (torch.cos(b) * x1 - torch.cos(a) * x0) / s
    return xt, ut


def ot_cost(x0, x1):
    """C[i, j] = sum_k arccos(<x1_i,k, x0_j,k>)^2 (rows x1, columns x0), in float32 on torch."""
    g = torch.einsum("ikd,jkd->kij", x1, x0)   # k batched GEMMs [n, n]
    return torch.acos(g.clamp(-1.0, 1.0)).square().sum(0)


def ot_pair(x0, x1, solver, rng):
    """Indices into x0 re-paired to the rows of x1."""
    C = ot_cost(x0, x1).numpy().astype(np.float64)
    n = C.shape[0]
    if solver == "scipy":                      # exact plan; for equal uniform batches a permutation
        from scipy.optimize import linear_sum_assignment
        _, cols = linear_sum_assignment(C)
        return torch.from_numpy(cols)
    import ot                                  # the authors' route: POT's exact EMD, then n pairs
    w = np.full(n, 1.0 / n)                    # drawn with replacement from the flattened plan
    plan = ot.emd(w, w, C)
    p = plan.ravel() / plan.sum()
    idx = rng.choice(n * n, size=n, p=p, replace=True)
    i, j = np.divmod(idx, n)
    return torch.from_numpy(i), torch.from_numpy(j)


def toy_probs(k, K, gen):
    return torch.softmax(torch.rand(k, K, generator=gen), dim=-1)


def toy_batch(probs, n, gen):
    idx = torch.multinomial(probs, n, replacement=True, generator=gen).T    # [n, k]
    return F.one_hot(idx, probs.shape[1]).float()


def make_flow_step(model, opt, coupling, solver, rng):
    def step(x1_onehot):
        x1 = x1_onehot.sqrt()
        n, k, K = x1.shape
        x0 = uniform_orthant(n, k, K)
        t = torch.rand(n)
        if coupling == "exact_ot":
            with torch.no_grad():
                pair = ot_pair(x0, x1, solver, rng)
            if solver == "scipy":
                x0 = x0[pair]
            else:
                i, j = pair
                x1, x0 = x1[i], x0[j]          # plan rows index x1, columns x0
        xt, ut = slerp(x0, x1, t)
        v = tangent(xt, model(xt, t))
        loss = (v - ut).square().sum(dim=(1, 2)).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()
    return step


@torch.no_grad()
def sample(model, n, k, K, steps=100):
    model.eval()
    x = uniform_orthant(n, k, K)
    h = 1.0 / steps
    for i in range(steps):
        t = torch.full((n,), i / steps)
        w = h * tangent(x, model(x, t))
        a = w.norm(dim=-1, keepdim=True)
        sinc = torch.where(a > 1e-4, torch.sin(a) / a.clamp_min(1e-30), 1 - a * a / 6)
        x = torch.cos(a) * x + sinc * w        # exp_x(h v)
        x = x.abs()                            # the orthant fold, then back onto the sphere
        x = x / x.norm(dim=-1, keepdim=True)
    model.train()
    return x * x


def bench_step(args):
    k, n = 4, 512
    for K in args.K:
        meds = {}
        for coupling in ("exact_ot", "independent"):
            torch.manual_seed(1)
            rng = np.random.default_rng(1)
            gen = torch.Generator().manual_seed(7)
            model = BMLP(k, K)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
            probs = toy_probs(k, K, gen)
            step = make_flow_step(model, opt, coupling, args.ot_solver, rng)
            ts, loss = [], 0.0
            for s in range(3 + args.steps):            # 3 warm-up steps, as bench_step.c
                x1 = toy_batch(probs, n, gen)          # data drawn before the clock, as there
                t0 = time.perf_counter()
                loss = step(x1)
                if s >= 3:
                    ts.append((time.perf_counter() - t0) * 1e3)
            name = coupling if coupling == "independent" else f"{coupling}/{args.ot_solver}"
            report(f"step  threads {args.threads} K={K:<4d} {name:<15s} params {n_params(model):8d}", ts,
                   f"  loss {loss:.4f}")
            meds[coupling] = med(ts)
            if coupling == "independent" and K in args.sample_K:
                sts = timed(lambda: sample(model, args.sample_n, k, K, 100), args.sample_warm, args.sample_reps)
                report(f"sample threads {args.threads} K={K:<4d} {args.sample_n} x 100 Euler steps", sts,
                       f"  ({med(sts) / 100:.2f} ms per field evaluation)")
        print(f"step  threads {args.threads} K={K:<4d} exact_ot / independent step time: "
              f"{meds['exact_ot'] / meds['independent']:.2f}", flush=True)


def bench_ot(args):
    k, K = 4, 100
    rng = np.random.default_rng(1)
    for n in (512, 2048):
        x0 = uniform_orthant(n, k, K)
        x1 = F.one_hot(torch.randint(0, K, (n, k)), K).float()
        reps = 20 if n == 512 else 5
        tc = timed(lambda: ot_cost(x0, x1), 2, reps)
        C = ot_cost(x0, x1).numpy().astype(np.float64)
        from scipy.optimize import linear_sum_assignment
        tl = timed(lambda: linear_sum_assignment(C), 1, reps)
        tw = timed(lambda: ot_pair(x0, x1, args.ot_solver, rng), 1, reps)
        print(f"ot    threads {args.threads} n={n:<5d} cost {med(tc):8.2f} ms, scipy assignment {med(tl):8.2f} ms, "
              f"whole pairing ({args.ot_solver}) {med(tw):8.2f} ms (medians of {reps})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="mlp,step,ot", help="comma list of mlp, step, ot")
    ap.add_argument("--K", default="20,160", help="alphabet sizes of the step benchmark")
    ap.add_argument("--steps", type=int, default=20, help="timed flow steps per (K, coupling), after 3 warm-up")
    ap.add_argument("--mlp-steps", type=int, default=50, help="timed MLP steps, after 5 warm-up")
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--sample-K", default="20,160", help="K values whose trained model is also sampled ('' = none)")
    ap.add_argument("--sample-n", type=int, default=2048)
    ap.add_argument("--sample-reps", type=int, default=3, help="timed sampling runs per K")
    ap.add_argument("--sample-warm", type=int, default=1,
                    help="untimed sampling runs before them (0: time the first run after training, as bench_step.c)")
    ap.add_argument("--ot-solver", choices=("scipy", "pot"), default="scipy",
                    help="scipy: linear_sum_assignment (a permutation, as fisherflow's exact_ot); "
                         "pot: ot.emd then n pairs drawn from the plan, as the authors' sampler")
    args = ap.parse_args()
    args.K = [int(s) for s in args.K.split(",") if s]
    args.sample_K = [int(s) for s in args.sample_K.split(",") if s]
    ob = set_threads(args.threads)
    header(args, ob)
    only = set(args.only.split(","))
    if "mlp" in only:
        bench_mlp(args)
    if "step" in only:
        bench_step(args)
    if "ot" in only:
        bench_ot(args)


if __name__ == "__main__":
    main()
