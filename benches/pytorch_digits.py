#!/usr/bin/env python3
"""The digits network's training step, MCD iteration and inference batch in PyTorch on CPU, for
side-by-side comparison with `cargo bench --bench train_step` (see benches/compare.sh).

Same network (conv5x5 1->32, BN, ReLU, pool; conv5x5 32->48, BN, ReLU, pool -> 768;
dropout, 768->100, BN, ReLU, dropout, 100->100, BN, ReLU, 100->10), same step
(cross-entropy, backward, Adam lr 2e-4, weight decay 5e-4), batch 128, 2 threads.

Needs PyTorch: `pip install torch`. Not part of CI.
usage: python3 benches/pytorch_digits.py [--threads 2] [--iters 30]
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--threads", type=int, default=2)
p.add_argument("--iters", type=int, default=30)
p.add_argument("--warmup", type=int, default=5)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
B = 128


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 32, 5), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 48, 5), nn.BatchNorm2d(48)
        self.fc1, self.bnf1 = nn.Linear(768, 100), nn.BatchNorm1d(100)
        self.fc2, self.bnf2 = nn.Linear(100, 100), nn.BatchNorm1d(100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2, 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2, 2).flatten(1)
        x = F.dropout(x, 0.5, self.training)
        x = F.relu(self.bnf1(self.fc1(x)))
        x = F.dropout(x, 0.5, self.training)
        x = F.relu(self.bnf2(self.fc2(x)))
        return self.fc3(x)


def inp(phase):
    j = torch.arange(B * 28 * 28, dtype=torch.float32)
    return torch.sin(j * 0.37 + phase).reshape(B, 1, 28, 28)


def bench(name, f):
    for _ in range(args.warmup):
        f()
    ts = []
    for _ in range(args.iters):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1e3)
    print(f"pytorch {name}: median {statistics.median(ts):.2f} ms (min {min(ts):.2f})")


net = Net()
opt = torch.optim.Adam(net.parameters(), lr=2e-4, weight_decay=5e-4)
x, xi = inp(0.0), inp(2.0)
y = torch.arange(B) % 10


def step():
    opt.zero_grad()
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    assert loss.item() == loss.item()


def infer():
    with torch.inference_mode():
        out = net(xi)
    assert out.shape == (B, 10)


class Generator(nn.Module):
    """The first half of Net: the feature generator G of MCD."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 32, 5), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 48, 5), nn.BatchNorm2d(48)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2, 2)
        return F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2, 2).flatten(1)


class Classifier(nn.Module):
    """The second half of Net: one of MCD's two classifiers."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bnf1 = nn.Linear(768, 100), nn.BatchNorm1d(100)
        self.fc2, self.bnf2 = nn.Linear(100, 100), nn.BatchNorm1d(100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        x = F.relu(self.bnf1(self.fc1(F.dropout(x, 0.5, self.training))))
        x = F.relu(self.bnf2(self.fc2(F.dropout(x, 0.5, self.training))))
        return self.fc3(x)


G, C1, C2 = Generator(), Classifier(), Classifier()
opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, weight_decay=5e-4)
opt_c = torch.optim.Adam(list(C1.parameters()) + list(C2.parameters()), lr=2e-4, weight_decay=5e-4)
xt = inp(1.0)


def disc(a, b):
    return (F.softmax(a, 1) - F.softmax(b, 1)).abs().mean()


def mcd_iteration():
    """Step A (source cross-entropy, all networks), step B (classifiers: source
    cross-entropy minus target discrepancy), step C (generator: discrepancy, 4 times)."""
    opt_g.zero_grad(); opt_c.zero_grad()
    f = G(x)
    (F.cross_entropy(C1(f), y) + F.cross_entropy(C2(f), y)).backward()
    opt_g.step(); opt_c.step()
    opt_g.zero_grad(); opt_c.zero_grad()
    fs, ft = G(x), G(xt)
    loss = F.cross_entropy(C1(fs), y) + F.cross_entropy(C2(fs), y) - disc(C1(ft), C2(ft))
    loss.backward()
    opt_c.step()
    for _ in range(4):
        opt_g.zero_grad(); opt_c.zero_grad()
        ft = G(xt)
        loss = disc(C1(ft), C2(ft))
        loss.backward()
        opt_g.step()
    assert loss.item() == loss.item()


print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
net.train()
bench("train_step/batch128", step)
for m in (G, C1, C2):
    m.train()
bench("mcd_iteration/batch128", mcd_iteration)
net.eval()
bench("inference/batch128", infer)
