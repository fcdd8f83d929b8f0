"""Re-check candidate counterexamples by a plain float64 forward pass.

Pipeline position: every engine (our search, the falsifier, Marabou) passes its
candidate inputs through :func:`confirm` before it may report ``VIOLATED``.
"""

from __future__ import annotations

import numpy as np

from verirepair.network.model import Network
from verirepair.properties.property import Property
from verirepair.tolerances import CEX_TOL
from verirepair.verify.result import Counterexample

#: Inputs proposed by an external solver may sit a hair outside the box because
#: of its own float tolerances; they are clipped back into the nearest box first
#: (clipping moves a point by at most this much, or it is rejected).
INPUT_CLIP_TOL = 1e-6


def confirm(network: Network, prop: Property, x: np.ndarray, source: str) -> list[Counterexample]:
    """Turn candidate inputs into counterexamples confirmed by a forward pass.

    Parameters
    ----------
    network : Network
    prop : Property
    x : array, shape (n, n_inputs) or (n_inputs,)
    source : str
        Who proposed the candidates.

    Returns
    -------
    list of Counterexample
        Only the candidates that lie in the input region (after clipping by at
        most ``INPUT_CLIP_TOL``) and whose float64 output is in the unsafe set,
        sorted by decreasing violation score.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.shape[0] == 0:
        return []
    # One pass per input box (not per point): the nearest box of each point and
    # its clipped copy; ties go to the first box.
    clipped = x.copy()
    best_dist = np.full(x.shape[0], np.inf)
    for box in prop.input_boxes:
        candidate = np.clip(x, box.lower, box.upper)
        dist = np.max(np.abs(candidate - x), axis=1)
        nearer = dist < best_dist
        clipped[nearer], best_dist[nearer] = candidate[nearer], dist[nearer]
    ok = best_dist <= INPUT_CLIP_TOL
    clipped = clipped[ok]
    if clipped.shape[0] == 0:
        return []
    y = network.forward(clipped)
    scores = prop.violation_score(y)
    order = np.argsort(-scores)
    return [
        Counterexample(clipped[i], y[i], float(scores[i]), True, source)
        for i in order if scores[i] >= -CEX_TOL
    ]
