"""Test and benchmark harnesses: code that drives the stages from outside.

Pipeline position: beside the pipeline, not in it.  Nothing in ``verirepair``
imports this package except :mod:`verirepair.cli` (for ``verirepair bench``);
the tests and ``benchmarks/`` use it directly (``tests/test_architecture.py``
checks this).

* :mod:`verirepair.harness.vnncomp_bench`: runs a VNN-COMP ``instances.csv``
  with several engines in a pool of worker processes, and compares them.
* :mod:`verirepair.harness.planted_faults`: corrupts one hidden neuron of a
  safe network until it fails, to score the localizers.

The package imports nothing itself, so that importing one harness does not
pay for the other.
"""
