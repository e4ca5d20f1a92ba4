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
import random
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


class Block(torch.nn.Module):
    """Basic residual block, as contrast-encoders' BasicBlock (no bias, batch norm)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        nn = torch.nn
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + idt)


class ResNet(torch.nn.Module):
    """contrast-encoders' ResNetConfig: stem (kernel, stride), basic blocks, global average pool."""

    def __init__(self, cin, layers, widths, stem_stride, stem_width):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(cin, stem_width, 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(stem_width), nn.ReLU())
        blocks, c = [], stem_width
        for stage, (n, w) in enumerate(zip(layers, widths)):
            for b in range(n):
                blocks.append(Block(c, w, 2 if b == 0 and stage > 0 else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(self.stem(x)).mean(dim=(2, 3))


def small_resnet():
    return ResNet(1, [1, 1, 1], [32, 64, 128], 2, 32)


def resnet18_cifar():
    return ResNet(3, [2, 2, 2, 2], [64, 128, 256, 512], 1, 64)


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
    if want("encoder_fwd_bwd"):
        cases = [("small-resnet", small_resnet, 1, 28)]
        if device == "cuda" or os.environ.get("CONTRAST_BENCH_LARGE"):
            cases.append(("resnet18-cifar", resnet18_cifar, 3, 32))
        for name, make, ch, side in cases:
            net = make().to(device).train()
            x = torch.randn(BATCH, ch, side, side, device=device)

            def fwd_bwd():
                net.zero_grad(set_to_none=True)
                net(x).sum().backward()

            out.append(dict(op="encoder_fwd_bwd", size=f"{name} {BATCH}x{ch}x{side}x{side}", backend=label,
                            median_ns=median_ns(fwd_bwd, 10, sync=sync),
                            throughput={"Elements": BATCH}))
    if want("augment_two_views") and device == "cpu":
        # SimCLR's CIFAR recipe as torchvision writes it (contrast's SimClrAugmentConfig::cifar:
        # crop scale 0.08-1, flip 0.5, colour jitter 0.8 x strength 0.5 with p 0.8, grayscale
        # 0.2, no blur), per sample on uint8 images, as a Dataset's __getitem__ runs it.
        try:
            import torchvision
            from torchvision.transforms import v2
        except ImportError:
            torchvision = None
        if torchvision is not None:
            for ch, side in ((1, 28), (3, 32)):
                s = 0.5
                aug = v2.Compose([
                    v2.RandomResizedCrop(side, scale=(0.08, 1.0), antialias=True),
                    v2.RandomHorizontalFlip(0.5),
                    v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
                    v2.RandomGrayscale(0.2) if ch == 3 else v2.Identity(),
                    v2.ToDtype(torch.float32, scale=True),
                    v2.Normalize([0.5] * ch, [0.25] * ch),
                ])
                images = torch.randint(0, 256, (BATCH, ch, side, side), dtype=torch.uint8)

                def two_views():
                    return [(aug(img), aug(img)) for img in images]

                out.append(dict(op="augment_two_views", size=f"{BATCH}x{ch}x{side}x{side}",
                                backend=f"pytorch-cpu torchvision {torchvision.__version__} (1 process)",
                                median_ns=median_ns(two_views, 10),
                                throughput={"Elements": BATCH}))
    if want("simclr_step"):
        backbone = small_resnet()
        head = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128))
        net = torch.nn.Sequential(backbone, head).to(device).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        v1 = torch.randn(BATCH, 1, 28, 28, device=device)
        v2 = torch.randn(BATCH, 1, 28, 28, device=device)

        def step():
            opt.zero_grad(set_to_none=True)
            z = net(torch.cat([v1, v2]))
            nt_xent(z[:BATCH], z[BATCH:]).backward()
            opt.step()

        out.append(dict(op="simclr_step", size=f"small-resnet batch {BATCH} (512 views of 28x28)", backend=label,
                        median_ns=median_ns(step, 10, sync=sync),
                        throughput={"Elements": BATCH}))
    if want("batch_sampler"):
        # The reference implementation's algorithm (THUDM/BatchSampler), rewritten: per-row
        # uniform candidates gathered and scored with a batched product in 20 folds, top-K;
        # walks with restart in Python, an epoch ending when every node was covered.
        n, d, m, k, b = 100_000, 128, 1000, 100, 256
        emb = F.normalize(torch.randn(n, d, device=device), dim=1)

        def build():
            folds = []
            for rows in torch.arange(n, device=device).chunk(20):
                cand = torch.randint(0, n, (len(rows), m), device=device)
                scores = torch.bmm(emb[rows].unsqueeze(1), emb[cand].transpose(1, 2)).squeeze(1)
                top = scores.topk(k, dim=1).indices
                folds.append(torch.gather(cand, 1, top))
            return torch.cat(folds).cpu()

        out.append(dict(op="batch_sampler_graph_build", size=f"N={n},d={d},M={m},K={k}", backend=label,
                        median_ns=median_ns(build, 3, warmup=1, sync=sync),
                        throughput={"Elements": n}))
        adj = build().tolist()

        def walk_epoch(p=0.2):
            rng = random.Random(0)
            covered = set()
            remaining = list(range(n))
            batches = 0
            while len(covered) < n:
                # As in the reference, the uncovered set is recomputed for every batch.
                remaining = [i for i in remaining if i not in covered]
                start = rng.choice(remaining)
                batch, cur = {start}, start
                steps = 0
                while len(batch) < b and steps < 20 * b:
                    if rng.random() < p:
                        cur = start
                    cur = rng.choice(adj[cur])
                    steps += 1
                    batch.add(cur)
                covered |= batch
                batches += 1
            return batches

        out.append(dict(op="batch_sampler_epoch", size=f"reference N={n},B={b},K={k}", backend=label,
                        median_ns=median_ns(walk_epoch, 3, warmup=0),
                        throughput={"Elements": n}))
    if want("gin_fwd_bwd") or want("graphcl_step"):
        out += graph_rows(device, label, want, sync)
    return out


def proteins_batch(n_graphs=128):
    """The first `n_graphs` graphs of PROTEINS as contrast-graph's TU loader builds them: one-hot
    node labels (sorted distinct values), edges in both directions, no duplicates, no
    self-loops. None when the shared datasets folder is missing."""
    root = os.environ.get("CONTRAST_SHARED_DATASETS") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "datasets")
    d = os.path.join(root, "tu", "PROTEINS")
    if not os.path.isdir(d):
        print(f"graph peers skipped: no PROTEINS at {d}")
        return None
    read = lambda name: open(os.path.join(d, f"PROTEINS_{name}.txt")).read().split("\n")
    graph_of = [int(v) for v in read("graph_indicator") if v.strip()]
    labels = [int(v) for v in read("node_labels") if v.strip()]
    values = sorted(set(labels))
    keep = [i for i, g in enumerate(graph_of) if g <= n_graphs]
    nodes = len(keep)
    edges = set()
    for line in read("A"):
        if not line.strip():
            continue
        u, v = (int(t) - 1 for t in line.split(","))
        if u != v and u < nodes and v < nodes:
            edges.add((u, v))
            edges.add((v, u))
    x = torch.zeros(nodes, len(values))
    for i in range(nodes):
        x[i, values.index(labels[i])] = 1.0
    edge_index = torch.tensor(sorted(edges), dtype=torch.long).t().contiguous()
    batch = torch.tensor([graph_of[i] - 1 for i in range(nodes)], dtype=torch.long)
    size = (f"PROTEINS first {n_graphs} graphs ({nodes} nodes, {edge_index.shape[1]} directed "
            f"edges, {len(values)} features), GIN 3x32")
    return x, edge_index, batch, size


def graph_rows(device, label, want, sync):
    """GIN as GraphCL's unsupervised TU code writes it with PyTorch Geometric, and its step."""
    try:
        import torch_geometric
        from torch_geometric.nn import GINConv, global_add_pool
    except ImportError:
        print("graph peers skipped: torch_geometric is not installed")
        return []
    data = proteins_batch()
    if data is None:
        return []
    x, edge_index, batch, size = (t.to(device) if torch.is_tensor(t) else t for t in data)
    nn = torch.nn
    label = f"{label} pyg {torch_geometric.__version__}"

    class Gin(nn.Module):
        def __init__(self, cin, dim=32, layers=3):
            super().__init__()
            self.convs = nn.ModuleList()
            self.bns = nn.ModuleList()
            for i in range(layers):
                mlp = nn.Sequential(nn.Linear(cin if i == 0 else dim, dim), nn.ReLU(), nn.Linear(dim, dim))
                self.convs.append(GINConv(mlp))
                self.bns.append(nn.BatchNorm1d(dim))

        def forward(self, x, edge_index, batch):
            xs = []
            for conv, bn in zip(self.convs, self.bns):
                x = bn(torch.relu(conv(x, edge_index)))
                xs.append(x)
            return torch.cat([global_add_pool(h, batch) for h in xs], 1)

    def loss_cl(a, b, t=0.2):
        # GraphCL's loss_cl: one direction, the positive left out of the denominator.
        sim = torch.einsum("ik,jk->ij", a, b) / torch.einsum("i,j->ij", a.norm(dim=1), b.norm(dim=1))
        sim = torch.exp(sim / t)
        pos = sim.diagonal()
        return -torch.log(pos / (sim.sum(dim=1) - pos)).mean()

    out = []
    graphs = int(batch.max()) + 1
    if want("gin_fwd_bwd"):
        net = Gin(x.shape[1]).to(device).train()

        def fwd_bwd():
            net.zero_grad(set_to_none=True)
            net(x, edge_index, batch).sum().backward()

        out.append(dict(op="gin_fwd_bwd", size=size, backend=label,
                        median_ns=median_ns(fwd_bwd, 20, sync=sync),
                        throughput={"Elements": graphs}))
    if want("graphcl_step"):
        net = Gin(x.shape[1]).to(device).train()
        head = nn.Sequential(nn.Linear(96, 96), nn.ReLU(inplace=True), nn.Linear(96, 96)).to(device)
        opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=1e-2)

        def step():
            opt.zero_grad(set_to_none=True)
            # Two passes, as GraphCL's `model(data)` and `model(data_aug)` (batch norm per view).
            z1 = head(net(x, edge_index, batch))
            z2 = head(net(x, edge_index, batch))
            loss_cl(z1, z2).backward()
            opt.step()

        out.append(dict(op="graphcl_step", size=size, backend=label,
                        median_ns=median_ns(step, 20, sync=sync),
                        throughput={"Elements": graphs}))
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
