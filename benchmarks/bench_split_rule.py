"""Input vs ReLU splitting on a few ACAS Xu instances (the measurement behind the split rule).

Opt-in.  Each instance is verified by ``own-input`` then ``own-relu`` in one process::

    OMP_NUM_THREADS=1 python benchmarks/bench_split_rule.py --timeout 30

Prints one line per (instance, engine): verdict, wall and CPU seconds, sub-problems.
"""

from __future__ import annotations

import argparse

from verirepair.properties import parse_vnnlib
from verirepair.tasks.acasxu import networks as acasxu_nets
from verirepair.verify import VerifyConfig, verify

INSTANCES = [("ACASXU_run2a_1_1_batch_2000", 1), ("ACASXU_run2a_2_4_batch_2000", 1),
             ("ACASXU_run2a_1_1_batch_2000", 3), ("ACASXU_run2a_4_2_batch_2000", 4)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per run")
    args = ap.parse_args(argv)
    acasxu_nets.require_data(("onnx",))
    for name, number in INSTANCES:
        net = acasxu_nets.load_acasxu(name)
        props = parse_vnnlib(str(acasxu_nets.vnnlib_path(number)))
        for engine in ("own-input", "own-relu"):
            r = verify(net, props, VerifyConfig(timeout_s=args.timeout), engine=engine)
            print(f"{name} prop_{number} {engine}: {r.verdict.vnncomp} {r.stats.time_s:.2f}s "
                  f"cpu={r.stats.extra['cpu_s']:.2f}s sub={r.stats.subproblems}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
