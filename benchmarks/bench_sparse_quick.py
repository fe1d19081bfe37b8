"""Quick benchmark of the sparse linear layers of a GSNN stack, forward + backward.

Run: ``python -m benchmarks.bench_sparse_quick [--n 2000 10000] [--threads 1] [--memory]``

Graph: N function nodes, each with ``deg`` random function parents plus a self edge
(E = (deg + 1) N edges), C channels per node. Per block: ``lin_in`` (E -> C*N,
nnz = C*E, entries (e, dst(e)*C + k)) and ``lin_out`` (C*N -> E, nnz = C*E, entries
(src(e)*C + k, e)), as in the GSNN layout. L blocks are chained
``x <- x + lin_out(tanh(lin_in(x)))`` on edge features (B, E); one timed call is the
forward and backward of the whole stack (float32, like training), so all
implementations pay the same elementwise cost. Implementations:

* ``gsnn_fast``: :func:`gsnn_fast.sparse.sparse_linear` (the kernels);
* ``torch_fallback``: :func:`gsnn_fast.sparse.sparse_linear_torch` with the plan: CSR
  sparse @ dense (MKL) forward and input gradient, gather-dot value gradient (custom
  autograd.Function; the best vectorised pure torch we found);
* ``torch_coo`` (not run by default: ~40x slower): ``torch.sparse.mm`` on a COO matrix,
  autograd-native;
* ``torch_index_add``: gather x[:, rows] * values, index_add_ over outputs (no batch
  replication; O(B nnz) memory);
* ``reference``: the pure-torch library's style -- edge indices replicated B times
  (offsets b*N, b*M), gather, multiply, scatter_add over the flattened batch. The
  replicated index is built once per batch size and cached (which flatters the baseline).

Prints median times and ratios to gsnn_fast of (a) one lin_in + one lin_out, forward +
backward, nothing else ("2 layers") and (b) the whole stack, wall and process CPU time
(CPU time is steadier on a shared machine); with ``--memory``, the peak RSS growth of
one stack step, each implementation in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from gsnn_fast.sparse import SparsePlan, sparse_linear, sparse_linear_torch


def make_graph(n: int, deg: int, channels: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (n * deg,), generator=g)
    dst = torch.arange(n).repeat_interleave(deg)
    src = torch.cat([src, torch.arange(n)])  # self edges last, as in the GSNN layout
    dst = torch.cat([dst, torch.arange(n)])
    E = src.numel()
    k = torch.arange(channels)
    e = torch.arange(E)
    # W_in (E x C*N): for each edge e, entries (e, dst*C + k), k ascending
    in_idx = torch.stack([e.repeat_interleave(channels), (dst[:, None] * channels + k).reshape(-1)])
    # W_out (C*N x E): for node n ascending, k ascending, each edge e with source n
    # (in edge order): entry (n*C + k, e)
    order = torch.argsort(src, stable=True)
    rows = src[order][:, None] * channels + k  # (E, C)
    key = rows * E + torch.arange(E)[:, None]
    perm = torch.argsort(key.reshape(-1))
    out_idx = torch.stack(
        [rows.reshape(-1)[perm], order[:, None].expand(E, channels).reshape(-1)[perm]]
    )
    return E, n * channels, in_idx, out_idx


def torch_coo(x, values, bias, plan):
    # torch.sparse.mm on a COO matrix (autograd-native; very slow value gradient on CPU)
    n_in, n_out = plan.size
    wt = torch.sparse_coo_tensor(
        plan.indices().flip(0), values, (n_out, n_in), check_invariants=False
    )
    y = torch.sparse.mm(wt, x.t()).t()
    return y + bias if bias is not None else y


def torch_index_add(x, values, bias, plan):
    idx = plan.indices()
    msg = x[:, idx[0]] * values
    y = x.new_zeros(x.shape[0], plan.size[1]).index_add_(1, idx[1], msg)
    return y + bias if bias is not None else y


_REP_CACHE: dict = {}


def reference(x, values, bias, plan):
    B = x.shape[0]
    n_in, n_out = plan.size
    key = (id(plan), B)
    if key not in _REP_CACHE:
        idx = plan.indices()
        ar = torch.arange(B)
        r = (idx[0][None, :] + ar[:, None] * n_in).reshape(-1)
        c = (idx[1][None, :] + ar[:, None] * n_out).reshape(-1)
        _REP_CACHE[key] = (r, c)
    r, c = _REP_CACHE[key]
    msg = x.reshape(-1)[r] * values.repeat(B)
    out = x.new_zeros(B * n_out).scatter_add(0, c, msg).view(B, n_out)
    return out + bias if bias is not None else out


IMPLS = {
    "gsnn_fast": lambda x, v, b, p: sparse_linear(x, v, b, p),
    "torch_fallback": lambda x, v, b, p: sparse_linear_torch(x, p.indices(), v, b, p.size, plan=p),
    "torch_coo": torch_coo,
    "torch_index_add": torch_index_add,
    "reference": reference,
}
DEFAULT_IMPLS = ["gsnn_fast", "torch_fallback", "torch_index_add", "reference"]


def _setup(n, deg, channels, B, seed=0):
    E, CT, in_idx, out_idx = make_graph(n, deg, channels, seed)
    p_in = SparsePlan.from_indices(in_idx, (E, CT))
    p_out = SparsePlan.from_indices(out_idx, (CT, E))
    g = torch.Generator().manual_seed(seed + 1)
    v_in = (torch.randn(in_idx.shape[1], generator=g) * 0.3).requires_grad_()
    v_out = (torch.randn(out_idx.shape[1], generator=g) * 0.3).requires_grad_()
    b_in = torch.zeros(CT, requires_grad=True)
    b_out = torch.zeros(E, requires_grad=True)
    x0 = torch.randn(B, E, generator=g)
    return E, CT, p_in, p_out, v_in, v_out, b_in, b_out, x0


def _timed(f, reps):
    """(median wall s, median CPU s of this process) over reps calls; one warm-up."""
    f()
    ts, cs = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        f()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    ts.sort()
    cs.sort()
    return ts[len(ts) // 2], cs[len(cs) // 2]


def run(n, deg, channels, layers, B, reps, impls, seed=0):
    E, CT, p_in, p_out, v_in, v_out, b_in, b_out, x0 = _setup(n, deg, channels, B, seed)

    def step(fn):
        x = x0.clone().requires_grad_()
        h = x
        for _ in range(layers):
            h = h + fn(torch.tanh(fn(h, v_in, b_in, p_in)), v_out, b_out, p_out)
        h.square().mean().backward()
        grads = [t.grad.clone() for t in (x, v_in, v_out, b_in, b_out)]
        for t in (v_in, v_out, b_in, b_out):
            t.grad = None
        return grads

    def layer_pair(fn):
        # one lin_in and one lin_out, forward + backward, nothing else
        xi = x0.detach().requires_grad_()
        fn(xi, v_in, b_in, p_in).backward(g_in)
        xo = h_mid.detach().requires_grad_()
        fn(xo, v_out, b_out, p_out).backward(g_out)
        for t in (v_in, v_out, b_in, b_out):
            t.grad = None

    gen = torch.Generator().manual_seed(seed + 2)
    g_in = torch.randn(B, CT, generator=gen)
    g_out = torch.randn(B, E, generator=gen)
    h_mid = torch.randn(B, CT, generator=gen)

    res = {}
    ref_grads = None
    for name in impls:
        fn = IMPLS[name]
        grads = step(fn)  # also the warm-up
        if ref_grads is None:
            ref_grads = grads
        err = max(
            float((a - b).abs().max() / (b.abs().max() + 1e-30)) for a, b in zip(grads, ref_grads)
        )
        wall, cpu = _timed(lambda fn=fn: step(fn), reps)
        lwall, lcpu = _timed(lambda fn=fn: layer_pair(fn), reps)
        res[name] = {
            "stack_wall_s": wall,
            "stack_cpu_s": cpu,
            "layers_wall_s": lwall,
            "layers_cpu_s": lcpu,
            "rel_err_vs_first": err,
        }
    return {
        "n": n,
        "E": E,
        "C_total": CT,
        "nnz_per_layer": int(p_in.nnz),
        "B": B,
        "L": layers,
        "threads": torch.get_num_threads(),
        "results": res,
    }


_MEM_SCRIPT = """
import torch, benchmarks.bench_sparse_quick as b
torch.set_num_threads(1)
E, CT, p_in, p_out, v_in, v_out, b_in, b_out, x0 = b._setup({n}, {deg}, {channels}, {B})
fn = b.IMPLS[{impl!r}]
fn(x0[:1].clone(), v_in, b_in, p_in)  # load libraries


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])


with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
r0 = status("VmRSS:")
h = x = x0.clone().requires_grad_()
for _ in range({layers}):
    h = h + fn(torch.tanh(fn(h, v_in, b_in, p_in)), v_out, b_out, p_out)
h.square().mean().backward()
print((status("VmHWM:") - r0) / 1024)
"""


def peak_rss_mb(n, deg, channels, layers, B, impl) -> float:
    """Peak RSS growth (MiB) of one stack step (forward + backward), in a fresh
    subprocess whose large allocations are mmapped and returned on free (so RSS
    follows live memory)."""
    code = _MEM_SCRIPT.format(n=n, deg=deg, channels=channels, B=B, impl=impl, layers=layers)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[2000])
    ap.add_argument("--deg", type=int, default=3)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--impls", nargs="+", default=DEFAULT_IMPLS, choices=list(IMPLS))
    ap.add_argument("--memory", action="store_true", help="also peak RSS growth per impl")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    out = []
    for n in a.n:
        r = run(n, a.deg, a.channels, a.layers, a.batch, a.reps, a.impls)
        if a.memory:
            for name in a.impls:
                r["results"][name]["peak_rss_mib"] = peak_rss_mb(
                    n, a.deg, a.channels, a.layers, a.batch, name
                )
        out.append(r)
        res = r["results"]
        base = res.get("gsnn_fast")
        print(
            f"N={n} E={r['E']} C_total={r['C_total']} nnz/layer={r['nnz_per_layer']} "
            f"B={r['B']} L={r['L']} threads={r['threads']}, float32, forward+backward"
        )
        print(
            f"  {'impl':16s} {'2 layers':>9s} {'ratio':>7s} {'cpu':>9s} {'ratio':>7s}"
            f" {'stack':>9s} {'ratio':>7s} {'cpu':>9s} {'ratio':>7s}"
            + ("  peak MiB" if a.memory else "")
            + "   (times in ms)"
        )
        for name, v in res.items():

            def ratio(key, v=v, base=base):
                return f"{v[key] / base[key]:6.2f}x" if base else ""

            mem = f"  {v['peak_rss_mib']:8.1f}" if a.memory else ""
            cols = ["layers_wall_s", "layers_cpu_s", "stack_wall_s", "stack_cpu_s"]
            row = " ".join(f"{v[k] * 1e3:9.2f} {ratio(k):>7s}" for k in cols)
            print(f"  {name:16s} {row}{mem}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
