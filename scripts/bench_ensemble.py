"""Ensemble evaluation: torch.func (stack_module_state + functional_call + vmap) vs stacked
weights with baddbmm (rlsuite.learners.ensemble.Ensemble), on CPU with one thread.

    .venv/bin/python scripts/bench_ensemble.py [--rounds 12] [--members 7] [--batch 256]

The methods run in interleaved rounds (so a busy neighbour on a shared machine slows both
alike); each round times 10 calls; the medians over rounds are printed. Also prints whether
each method reproduces the members' own ``nn.Linear`` outputs bit for bit.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from rlsuite.learners.ensemble import Ensemble


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--members", type=int, default=7)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--in-dim", type=int, default=20)
    parser.add_argument("--out-dim", type=int, default=34)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    e, n = args.members, args.batch
    ens = Ensemble(e, args.in_dim, args.out_dim, (200, 200, 200, 200))
    members = [ens.member(i) for i in range(e)]
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")

    def call(p, b, x):
        return functional_call(base, (p, b), (x,))

    per_member, shared = vmap(call, in_dims=(0, 0, 0)), vmap(call, in_dims=(0, 0, None))
    xs, x1 = torch.randn(e, n, args.in_dim), torch.randn(n, args.in_dim)
    cases = {
        ("predict, shared input, no_grad", "vmap"): lambda: shared(params, buffers, x1),
        ("predict, shared input, no_grad", "baddbmm"): lambda: ens(x1),
        ("train step, per-member input, fwd+bwd", "vmap"):
            lambda: per_member(params, buffers, xs).square().mean().backward(),
        ("train step, per-member input, fwd+bwd", "baddbmm"):
            lambda: ens(xs).square().mean().backward(),
    }
    times: dict[tuple[str, str], list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for key, fn in cases.items():
            with torch.no_grad() if "no_grad" in key[0] else torch.enable_grad():
                fn()
                tic = time.perf_counter()
                for _ in range(10):
                    fn()
                times[key].append((time.perf_counter() - tic) / 10 * 1e3)
    print(f"E={e}, 4x200 SiLU MLP {args.in_dim}->{args.out_dim}, batch {n}, 1 thread; "
          f"median (min) ms over {args.rounds} rounds")
    for (case, method), ts in times.items():
        print(f"  {case:<40} {method:<8} {statistics.median(ts):8.2f} ({min(ts):.2f})")
    with torch.no_grad():
        ref = torch.stack([m(xs[i]) for i, m in enumerate(members)])
        exact_vmap = torch.equal(per_member(params, buffers, xs), ref)
        exact_bmm = torch.equal(ens(xs), ref)
        print("bit-identical to the members: baddbmm", exact_bmm, "| vmap", exact_vmap)


if __name__ == "__main__":
    main()
