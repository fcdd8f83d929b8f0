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

#: A weight or bias change of magnitude at most this counts as "unchanged" when
#: a patch reports how many parameters it modifies (LP solutions carry noise of
#: order 1e-12 on entries that are zero at the optimum).
PATCH_ZERO_TOL = 1e-9

#: Relative slack trusted on an LP optimum (HiGHS simplex): a minimum ``v`` is
#: used as the bound ``v - LP_BOUND_TOL * (1 + |v|)``.  HiGHS's default primal
#: and dual feasibility tolerances are 1e-7, so the optimum can be off by about
#: that times the size of the duals; 1e-6 covers the ACAS Xu-sized LPs.
LP_BOUND_TOL = 1e-6

#: Agreement between our float64 forward pass and a *float32* engine
#: (onnxruntime on a float32 model, or the float32-rounded twin of a network).
#: float32 arithmetic alone makes them differ: on the 45 ACAS Xu networks
#: (|y| <= 11) onnxruntime differs from our float64 pass by up to 1.3e-5 over
#: 1000 points each (median 8e-7), exactly a float32 NumPy pass's deviation, while
#: onnxruntime on a float64 copy of the same graph agrees bit for bit.  So
#: FORWARD_AGREE_TOL applies to float64 engines; this one (about 4x the measured
#: worst case) to float32 engines on ACAS-sized networks.
FLOAT32_FORWARD_TOL = 5e-5

#: Relative outward slack of the linear relaxations of smooth and leaky
#: activations (:mod:`verirepair.verify.activation_bounds`): each intercept moves
#: out by this times ``1 + |intercept| + |slope| * max(|l|, |u|)``, each interval
#: bound ``f(l), f(u)`` by this times ``1 + |f|``.  It covers the few-ulp errors
#: of ``tanh``/``exp``/``log`` in float64, of the closed-form tangent points
#: (whose error enters the gap only to second order) and of evaluating the line
#: itself; 1e-12 is ~4000 ulps of the largest term.  BOUND_TOL still applies on top.
ACTIVATION_RELAX_TOL = 1e-12
