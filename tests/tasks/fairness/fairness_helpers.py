"""A hand-built fairness case with a known answer, shared by the fairness tests.

Columns: ``sex`` (one-hot, inputs 0 = female, 1 = male), ``x1`` and ``x2``
(numeric, inputs 2 and 3; the rows include 0 and 1 so the encoding is the
identity on them).  The network has one hidden layer::

    h0 = relu(x1),  h1 = relu(x2),  h2 = relu(male - female)   (1 for men, 0 for women)
    logit0 = 0,     logit1 = h0 - 0.5 + 0.2 * h2

so the class is 1 iff ``x1 + 0.2 * male > 0.5``: the decision depends on sex
through neuron ``h2`` only, and exactly the individuals with ``0.3 < x1 <= 0.5``
are discriminated (a uniform ``x1`` gives the rate 0.2).
"""

from __future__ import annotations

import numpy as np

from verirepair.network.model import AffineLayer, Network
from verirepair.tasks.fairness.data import Encoding, encode_rows, fit_encoding

GUILTY_UNIT = 2


def fair_case_network() -> Network:
    """The network of the module docstring."""
    hidden = AffineLayer(np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [-1.0, 1.0, 0.0, 0.0]]),
                         np.zeros(3), relu=True)
    out = AffineLayer(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.2]]), np.array([0.0, -0.5]), relu=False)
    return Network((hidden, out), "fair_case")


def fair_case_rows(n: int = 400, seed: int = 0) -> list[dict[str, str]]:
    """Training rows: women with x1 outside (0.45, 0.55), men outside (0.3, 0.55).

    So the discriminated training individuals are women with ``0.3 < x1 <= 0.45``
    (their target is class 0), and every fix point can get its class with a
    margin of 0.02 through ``h2``'s row.
    """
    rng = np.random.default_rng(seed)
    rows = [{"sex": "female", "x1": "0", "x2": "0"}, {"sex": "male", "x1": "1", "x2": "1"}]
    while len(rows) < n:
        sex = "male" if rng.random() < 0.5 else "female"
        x1 = float(rng.random())
        if (sex == "female" and 0.45 < x1 < 0.55) or (sex == "male" and 0.3 < x1 < 0.55):
            continue
        rows.append({"sex": sex, "x1": repr(x1), "x2": repr(float(rng.random()))})
    return rows


def fair_case_data(n: int = 400, seed: int = 0) -> tuple[Encoding, np.ndarray]:
    """The encoding and the encoded rows of :func:`fair_case_rows`."""
    rows = fair_case_rows(n, seed)
    encoding = fit_encoding(rows, ("sex", "x1", "x2"), frozenset({"x1", "x2"}))
    return encoding, encode_rows(encoding, rows)
