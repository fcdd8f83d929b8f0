"""Named numeric tolerances, in one place (see CONVENTIONS.md, convention 4).

Every comparison with slack in verirepair uses one of these names, so that the
soundness argument can be read off this file.
"""

#: Outward slack added to every computed bound before it is used to prove a
#: property.  Bound propagation runs in float64; the accumulated rounding error
#: of a 7-layer, 50-wide network is below 1e-12 in relative terms, so 1e-9 on
#: values of order 1..1e3 is a generous, documented margin.  A sub-problem is
#: only declared safe when its lower bound on the safety margin exceeds this.
BOUND_TOL = 1e-9

#: Feasibility tolerance when an LP solution is read back (primal residuals).
FEAS_TOL = 1e-7

#: Margin by which repaired counterexamples must leave the unsafe set, in raw
#: network output units.
MARGIN = 1e-3

#: Agreement required between two forward passes of the same network computed
#: by different engines (ours in float64, onnxruntime in float32).
FORWARD_AGREE_TOL = 1e-6

#: A point's output counts as inside the (closed) unsafe set when its violation
#: score is at least ``-CEX_TOL``.  Zero: we confirm counterexamples exactly in
#: float64; strict VNN-LIB inequalities are read as non-strict (closure), which
#: is the sound direction for proofs.
CEX_TOL = 0.0
