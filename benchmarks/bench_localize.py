"""Benchmark of the fault-localization stage (CARE-style causal vs baselines).

Two experiments, each writing a Markdown table to ``benchmarks/results``:

``planted``  Safe networks get one hidden neuron corrupted until sampling finds
             violations (:func:`verirepair.harness.planted_faults.plant_fault`); every
             method ranks the neurons and we record the planted neuron's rank.
             Small random networks and ACAS Xu networks with property 1.
``real``     Genuine ACAS Xu violations (N2,9 phi8; N1,9 phi7; phi2 on N2,1,
             N3,5, N5,9): top neurons, suggested layer, time, and how many
             counterexamples are fixed by switching the top neurons off.

Usage (from the repository root; single-threaded BLAS keeps timings honest)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_localize.py planted
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_localize.py real

The case list is fixed in this file and seeded; every case is reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verirepair.atomic import write_text_atomic
from verirepair.harness.planted_faults import FaultKind, fault_candidates, plant_fault
from verirepair.localize import LocalizeConfig, localize, pgd_counterexamples, sample_correct, sample_counterexamples
from verirepair.localize.scoring import violating
from verirepair.network.loader import load_network
from verirepair.network.model import Network, random_network
from verirepair.properties.property import Box, HalfSpaces, Property
from verirepair.properties.vnnlib import parse_vnnlib
from verirepair.tasks.acasxu import networks as acasxu_nets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: The compared rankings: label -> config overrides.
METHODS = {
    "causal": {"method": "causal"},
    "causal-full": {"method": "causal", "intervention_range": "full"},
    "activation": {"method": "activation"},
    "gradient": {"method": "gradient"},
}
RANDOM_SIZES = [5, 16, 16, 16, 3]
N_RANDOM = 24
ACAS_NETS = [(1, 1), (1, 6), (2, 2), (2, 7), (3, 3), (3, 8), (4, 4), (4, 9),
             (5, 1), (5, 5), (1, 3), (3, 5), (2, 4), (4, 2), (5, 8), (1, 9)]
#: Held-out cases, added after the tie rule (``LocalizeConfig.tie_rtol``) was
#: designed by looking at the misses on the two lists above.
N_RANDOM_HELDOUT = 24
ACAS_NETS_HELDOUT = [(1, 2), (1, 4), (1, 5), (1, 7), (1, 8), (2, 1), (2, 3), (2, 5),
                     (2, 6), (2, 8), (3, 1), (3, 2), (3, 4), (3, 6), (4, 1), (4, 3)]
HISTORY = """\
## Design history (read before trusting the numbers)

The causal ranking was designed on the `random` and `acasxu-phi1` lists. Before the
tie rule (`tie_rtol`: near-equal effects rank the neuron closer to the output first)
was added, causal scored top-1 11/24 and top-3 22/24 on `random`, and top-1 9/13 and
top-3 11/13 on `acasxu-phi1`. Both ACAS misses were exact ties: upstream neurons whose
intervention silences the faulty neuron had the same effect as the faulty neuron. The
`*-heldout` lists were added afterwards and were not looked at while designing.
"""
REAL_CASES = [((2, 9), 8), ((1, 9), 7), ((2, 1), 2), ((3, 5), 2), ((5, 9), 2)]
N_CEX = 256
N_CORRECT = 256
#: Rank recorded when a method cannot run on a case (e.g. no correct inputs).
MISSING_RANK = 10**6


def acas_net(x: int, y: int) -> Network:
    """Load ACAS Xu network N_{x,y} from the shared ONNX files."""
    return load_network(acasxu_nets.onnx_path((x, y)))


def acas_prop(index: int) -> list[Property]:
    """Parse ACAS Xu property ``index`` from the shared VNN-LIB files."""
    return parse_vnnlib(acasxu_nets.vnnlib_path(index))


def random_case(seed: int) -> tuple[Network, list[Property]]:
    """A random network and a property it satisfies on 20,000 samples.

    The unsafe set is ``y0 >= t`` with ``t`` a quarter of the sampled range of
    ``y0`` above its sampled maximum over the box ``[-1, 1]^5``.
    """
    net = random_network(RANDOM_SIZES, seed=seed, name=f"random{seed}")
    box = Box(-np.ones(RANDOM_SIZES[0]), np.ones(RANDOM_SIZES[0]))
    y0 = net.forward(box.sample(np.random.default_rng(seed), 20_000))[:, 0]
    threshold = y0.max() + 0.25 * (y0.max() - y0.min())
    a = np.zeros((1, RANDOM_SIZES[-1]))
    a[0, 0] = -1.0
    return net, [Property((box,), (HalfSpaces(a, [-threshold]),), name=f"y0>={threshold:.3f}")]


@dataclass
class PlantedRow:
    """One planted-fault case and the planted neuron's rank under each method."""

    suite: str
    case: str
    layer_index: int
    unit: int
    kind: str
    scale: float
    n_cex: int
    n_correct: int
    ranks: dict
    times: dict


def run_planted_case(suite: str, name: str, net: Network, props: list[Property],
                     layer_index: int, kind: FaultKind, seed: int) -> PlantedRow | str:
    """Plant one fault (first plantable candidate in seeded order) and rank it."""
    rng = np.random.default_rng(seed)
    min_active = 0.05 if kind is FaultKind.WEIGHTS else 0.0
    candidates = fault_candidates(net, props, layer_index, rng, min_active=min_active)
    rng.shuffle(candidates)
    fault = None
    for unit in candidates[:5]:
        try:
            fault = plant_fault(net, props, layer_index, int(unit), kind, rng)
            break
        except ValueError:
            continue
    if fault is None:
        return f"{suite} {name} layer {layer_index} {kind.value}: no plantable neuron " \
               f"({len(candidates)} candidates)"
    correct = sample_correct(fault.network, props, N_CORRECT, rng)
    ranks, times = {}, {}
    for label, overrides in METHODS.items():
        try:
            loc = localize(fault.network, props, fault.cex_x, correct,
                           LocalizeConfig(seed=seed, **overrides))
        except ValueError:            # activation needs correct inputs; counted as a miss
            ranks[label], times[label] = MISSING_RANK, float("nan")
            continue
        ranks[label] = loc.rank_of(layer_index, fault.unit)
        times[label] = loc.time_s
    return PlantedRow(suite, name, layer_index, fault.unit, kind.value, fault.scale,
                      int(fault.cex_x.shape[0]), int(correct.shape[0]), ranks, times)


def planted_cases() -> list[PlantedRow | str]:
    """All planted cases: the fixed random and ACAS Xu lists."""
    out: list[PlantedRow | str] = []
    for i in range(N_RANDOM):
        net, props = random_case(1000 + i)
        layer = 2 if (i // 2) % 2 == 0 else 1            # last / second-to-last hidden
        kind = FaultKind.WEIGHTS if i % 2 == 0 else FaultKind.BIAS
        out.append(run_planted_case("random", f"seed{1000 + i}", net, props, layer, kind, i))
        print(out[-1], flush=True)
    for i in range(N_RANDOM_HELDOUT):
        net, props = random_case(2000 + i)
        layer = 2 if (i // 2) % 2 == 0 else 1
        kind = FaultKind.WEIGHTS if i % 2 == 0 else FaultKind.BIAS
        out.append(run_planted_case("random-heldout", f"seed{2000 + i}", net, props, layer,
                                    kind, 100 + i))
        print(out[-1], flush=True)
    props = acas_prop(1)
    for suite, nets, offset in (("acasxu-phi1", ACAS_NETS, 0),
                                ("acasxu-phi1-heldout", ACAS_NETS_HELDOUT, 100)):
        for i, (x, y) in enumerate(nets):
            layer = 5 if (i // 2) % 2 == 0 else 4
            kind = FaultKind.WEIGHTS if i % 2 == 0 else FaultKind.BIAS
            out.append(run_planted_case(suite, f"N{x},{y}", acas_net(x, y), props,
                                        layer, kind, offset + i))
            print(out[-1], flush=True)
    return out


def planted_markdown(rows: list[PlantedRow | str], command: str) -> str:
    """Summary table (top-1 / top-3 per suite and method) plus every case."""
    lines = ["# Fault localization on planted faults", "",
             f"Command: `{command}`  ", f"Machine: {platform.machine()}, "
             f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", "",
             "Protocol: see `benchmarks/bench_localize.py` (fixed case list and seeds; "
             "every case reported). Ranks are 1-based over all hidden neurons "
             f"(random nets: {sum(RANDOM_SIZES[1:-1])}, ACAS Xu: 300).", "",
             HISTORY, "## Summary", "",
             "| suite | cases | method | top-1 | top-3 | median rank | mean time (s) |",
             "|---|---|---|---|---|---|---|"]
    done = [r for r in rows if isinstance(r, PlantedRow)]
    for suite in dict.fromkeys(r.suite for r in done):
        sub = [r for r in done if r.suite == suite]
        for label in METHODS:
            ranks = np.array([r.ranks[label] for r in sub])
            lines.append(f"| {suite} | {len(sub)} | {label} | {np.sum(ranks == 1)}/{len(sub)} "
                         f"({100 * np.mean(ranks == 1):.0f}%) | {np.sum(ranks <= 3)}/{len(sub)} "
                         f"({100 * np.mean(ranks <= 3):.0f}%) | {np.median(ranks):g} | "
                         f"{np.nanmean([r.times[label] for r in sub]):.2f} |")
    lines += ["", "## Every case", "",
              "| suite | case | layer | unit | fault | scale | #cex | #correct | "
              + " | ".join(f"rank {m}" for m in METHODS) + " |",
              "|---" * (8 + len(METHODS)) + "|"]
    for r in done:
        lines.append(f"| {r.suite} | {r.case} | {r.layer_index} | {r.unit} | {r.kind} | "
                     f"{r.scale:.3g} | {r.n_cex} | {r.n_correct} | "
                     + " | ".join("n/a" if r.ranks[m] == MISSING_RANK else str(r.ranks[m])
                                  for m in METHODS) + " |")
    skipped = [r for r in rows if isinstance(r, str)]
    if skipped:
        lines += ["", "Cases where no fault could be planted (not counted):", ""]
        lines += [f"- {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def ablate(net: Network, units: list[tuple[int, int]]) -> Network:
    """The network with the given hidden neurons switched off (h = 0)."""
    for layer_index, unit in units:
        layer = net.layers[layer_index]
        weight, bias = np.array(layer.weight), np.array(layer.bias)
        weight[unit], bias[unit] = 0.0, 0.0
        net = net.replace_layer(layer_index, weight, bias)
    return net


def real_counterexamples(net: Network, props: list[Property], seed: int) -> tuple[np.ndarray, str]:
    """Counterexamples by uniform sampling, topped up by PGD when sampling finds few."""
    rng = np.random.default_rng(seed)
    cex = sample_counterexamples(net, props, N_CEX, rng, max_draws=200_000)
    source = "sampling"
    if cex.shape[0] < 32:
        more = pgd_counterexamples(net, props, N_CEX - cex.shape[0], rng)
        cex = np.vstack([cex, more])
        source = f"sampling ({cex.shape[0] - more.shape[0]}) + PGD ({more.shape[0]})"
    return cex, source


def real_markdown(command: str) -> str:
    """Localize the genuine ACAS Xu violations and tabulate the results."""
    lines = ["# Fault localization on real ACAS Xu violations", "",
             f"Command: `{command}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", "",
             "fix@k = share of the counterexamples that are no longer violating after the "
             "method's top-k neurons are switched off (h = 0); flip@k = share of the correct "
             "inputs that then violate or change advisory. fix@k only switches neurons off, so "
             "it cannot credit a ranking (causal-full) whose top neuron must be raised.", "",
             "| net | prop | #cex (source) | #correct | method | top-5 (layer:unit effect) | "
             "suggested layer: neurons | fix@1 | fix@3 | flip@3 | time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (x, y), index in REAL_CASES:
        net, props = acas_net(x, y), acas_prop(index)
        cex, source = real_counterexamples(net, props, seed=index)
        if cex.shape[0] == 0:
            lines.append(f"| N{x},{y} | {index} | 0 ({source}) | | no counterexample found |"
                         " | | | | | |")
            continue
        correct = sample_correct(net, props, N_CORRECT, np.random.default_rng(index))
        base_decision = np.argmin(net.forward(correct), axis=1)
        for label, overrides in METHODS.items():
            loc = localize(net, props, cex, correct, LocalizeConfig(seed=0, **overrides))
            top = ", ".join(f"{e.layer_index}:{e.unit} {e.effect_violation:.3g}"
                            for e in loc.top(5))
            fixes = []
            for k in (1, 3):
                fixed = ablate(net, [(e.layer_index, e.unit) for e in loc.top(k)])
                fixes.append(1.0 - np.mean(violating(props, cex, fixed.forward(cex))))
            out = fixed.forward(correct)
            flips = np.mean(violating(props, correct, out) | (np.argmin(out, 1) != base_decision))
            lines.append(
                f"| N{x},{y} | {index} | {cex.shape[0]} ({source}) | {correct.shape[0]} | {label} "
                f"| {top} | {loc.suggested_layer}: {list(loc.suggested_neurons)} | "
                f"{fixes[0]:.2f} | {fixes[1]:.2f} | {flips:.2f} | {loc.time_s:.2f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["planted", "real"])
    args = parser.parse_args()
    command = f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_localize.py {args.experiment}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    import torch  # noqa: F401  -- imported up front so no method's timing pays for it

    start = time.perf_counter()
    if args.experiment == "planted":
        text = planted_markdown(planted_cases(), command)
    else:
        text = real_markdown(command)
    text += f"\nTotal wall time: {time.perf_counter() - start:.0f} s\n"
    target = RESULTS / f"localize_{args.experiment}.md"
    write_text_atomic(target, text)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
