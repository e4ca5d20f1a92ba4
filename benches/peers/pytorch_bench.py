#!/usr/bin/env python3
"""The PyTorch peer of contrast's criterion benchmarks: the same operations at the same sizes.

Run by `cargo xtask bench --peer pytorch` (set CONTRAST_PYTHON to an interpreter that has
torch). Writes a JSON list of rows {op, size, backend, median_ns, throughput} that
`cargo xtask bench-report` merges into docs/benchmarks.md, so ratios come from one run.

Each operation is written the way the reference implementations write it (SimCLR-style NT-Xent
with cross_entropy, MoCo's in-place queue write and parameter-loop EMA, InstDisc's
index_copy_ bank update).
"""
import argparse
import json
import os
import re
import statistics
import time

import torch
import torch.nn.functional as F

D = 128
BATCH = 256


def median_ns(fn, repeats, warmup=2, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        sync()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times)


def nt_xent(z1, z2, t=0.5):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / t
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = (torch.arange(2 * n, device=z.device) + n) % (2 * n)
    return F.cross_entropy(sim, targets)


def rows(device, label, want):
    sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
    out = []
    if want("nt_xent_fwd_bwd"):
        for n in (256, 1024, 4096):
            z1 = torch.randn(n, D, device=device)
            z2 = torch.randn(n, D, device=device)

            def step():
                a = z1.clone().requires_grad_(True)
                nt_xent(a, z2).backward()
                return a.grad

            out.append(dict(op="nt_xent_fwd_bwd", size=f"n={n},d={D}", backend=label,
                            median_ns=median_ns(step, 10, sync=sync),
                            throughput={"Elements": 2 * n}))
    if want("queue_enqueue"):
        k = 65536
        queue = torch.zeros(k, D, device=device)
        keys = torch.randn(BATCH, D, device=device)
        state = {"ptr": 0}

        def enqueue():
            p = state["ptr"]
            queue[p:p + BATCH] = keys.detach()
            state["ptr"] = (p + BATCH) % k

        out.append(dict(op="queue_enqueue", size=f"{BATCH}x{D} into {k}x{D}", backend=label,
                        median_ns=median_ns(enqueue, 200, sync=sync),
                        throughput={"Bytes": BATCH * D * 4}))
    if want("bank_update"):
        n = 1_280_000
        bank = F.normalize(torch.randn(n, D, device=device), dim=1)
        feats = torch.randn(BATCH, D, device=device)
        stride = n // BATCH
        state = {"step": 0}

        def update(m=0.5):
            state["step"] += 1
            idx = torch.arange(BATCH, device=device) * stride + state["step"] % stride
            with torch.no_grad():
                rows_ = bank.index_select(0, idx) * m + feats * (1 - m)
                bank.index_copy_(0, idx, F.normalize(rows_, dim=1))

        out.append(dict(op="bank_update", size=f"{BATCH}x{D} into {n}x{D}", backend=label,
                        median_ns=median_ns(update, 100, sync=sync),
                        throughput={"Bytes": 2 * BATCH * D * 4}))
    if want("ema_update"):
        width = 1580
        online = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(10)]).to(device)
        target = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(10)]).to(device)
        params = sum(p.numel() for p in online.parameters())

        @torch.no_grad()
        def ema(m=0.999):
            for pt, po in zip(target.parameters(), online.parameters()):
                pt.mul_(m).add_(po, alpha=1 - m)

        out.append(dict(op="ema_update", size=f"{params / 1e6:.1f}M params", backend=label,
                        median_ns=median_ns(ema, 10, sync=sync),
                        throughput={"Bytes": 3 * params * 4}))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--filter", default=None, help="regular expression on operation names")
    args = ap.parse_args()
    want = lambda op: args.filter is None or re.search(args.filter, op) is not None
    torch.manual_seed(0)
    results = rows("cpu", f"pytorch-cpu {torch.__version__} ({torch.get_num_threads()} threads)", want)
    if torch.cuda.is_available():
        results += rows("cuda", f"pytorch-cuda {torch.__version__} ({torch.cuda.get_device_name()})", want)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    for r in results:
        print(f"{r['op']:>18} {r['size']:>28} {r['backend']:>40} {r['median_ns'] / 1e6:10.3f} ms")


if __name__ == "__main__":
    main()
