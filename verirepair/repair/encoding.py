"""Linear encodings of one layer's repair with activation patterns held fixed.

Pipeline position: used by :func:`verirepair.repair.repair_layer` to build the
repair LP (and the sample-side rows of the MILP encoding).

Math (PRDNN-style).  The repaired layer ``k`` computes ``z = (W + D) a + (b + d_b)``
for a sample whose input activation ``a = acts[k]`` is a constant, so with the
augmented input ``a~ = [a, 1]`` the change of its pre-activation is ``D~ a~``,
linear in the variables ``d = vec(D~[sel])`` (``sel`` = the rows allowed to
change; shape ``(len(sel) * (in + 1),)``, row-major).  Keeping the activation
pattern of the *original* network fixed for the sample in layer ``k`` and every
later layer, the pre-activation of any later layer ``j`` is affine in ``z``:
``pre_j = pre0_j + J_j P_k (D~ a~)`` where ``J_j`` is the product of the later
weights and fixed 0/1 ReLU masks.  A linear functional ``c . pre_j`` of a
sample therefore has the coefficient row ``kron((c J_j P_k)[sel], a~)`` over
``d``, computed here by one batched backward pass per block of rows.  The
pattern is enforced by sign rows (active: ``pre >= 0``, inactive: ``pre <= 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from verirepair.errors import UnsupportedActivationError
from verirepair.network.model import Network
from verirepair.solvers.model import LinearProblem


def fixed_pattern_applies(network: Network, layer_index: int) -> bool:
    """Whether the fixed-pattern encoding is exact for repairing ``layer_index``.

    It is when layer ``layer_index`` and every later layer is linear or ReLU:
    with the pattern held, each is affine in the change.  A smooth activation
    (tanh, sigmoid, ELU, softplus) or a LeakyReLU at or after the layer is not
    linearised by it.  The output-layer repair of a smooth network qualifies:
    its inputs (the last hidden activations) are fixed numbers.
    """
    return all(layer.activation.is_identity or layer.relu
               for layer in network.layers[layer_index:])


def check_fixed_pattern(network: Network, layer_index: int) -> None:
    """Raise :class:`UnsupportedActivationError` unless :func:`fixed_pattern_applies`."""
    for j in range(layer_index, network.n_layers):
        activation = network.layers[j].activation
        if not (activation.is_identity or activation.is_relu):
            raise UnsupportedActivationError(
                f"cannot repair layer {layer_index} by LP: layer {j} has activation "
                f"{activation.label}, which the fixed-pattern encoding does not linearise "
                f"(only ReLU and linear layers); repair the output layer "
                f"{network.n_layers - 1} instead")


@dataclass(frozen=True, slots=True)
class DeltaLayout:
    """Where the weight/bias changes of layer ``layer_index`` sit in the variable vector.

    Parameters
    ----------
    layer_index : int
    rows : array of int, shape (n_sel,)
        Units of the layer that may change (sorted).
    n_in : int
        Input width of the layer; each changed row has ``n_in + 1`` variables
        (its weights, then its bias).
    n_out : int
        Output width of the layer.
    cols : array of int, shape (n_cols,), or None
        Input units (columns of the weight matrix) whose weights may change;
        None: all.  A changed row's bias may always change.
    """

    layer_index: int
    rows: np.ndarray
    n_in: int
    n_out: int
    cols: np.ndarray | None = None

    @property
    def aug_cols(self) -> np.ndarray:
        """Columns of the augmented input ``[a, 1]`` that carry variables (bias last)."""
        chosen = np.arange(self.n_in) if self.cols is None else np.asarray(self.cols, dtype=np.int64)
        return np.append(chosen, self.n_in)

    @property
    def n_aug(self) -> int:
        """Variables per changed row: the chosen weights plus the bias."""
        return int(self.aug_cols.shape[0])

    @property
    def n_vars(self) -> int:
        """Number of change variables ``len(rows) * n_aug``."""
        return int(self.rows.shape[0] * self.n_aug)

    def to_matrices(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Turn ``d`` (n_vars,) into ``(delta_weight (out, in), delta_bias (out,))``."""
        full = np.zeros((self.n_out, self.n_in + 1))
        full[np.ix_(self.rows, self.aug_cols)] = np.asarray(d, dtype=np.float64).reshape(
            len(self.rows), self.n_aug)
        return full[:, :-1], full[:, -1]


class FixedPatternModel:
    """Per-sample linearisation of the network around its original activation pattern.

    Parameters
    ----------
    network : Network
    layout : DeltaLayout
    x : array, shape (n, n_inputs)
        The samples (counterexamples and preservation points).

    Attributes
    ----------
    a_aug : array, shape (n, n_in + 1)
        Input activations of the repaired layer with a trailing 1.
    pre0 : list of arrays
        ``pre0[j - k]`` is the original pre-activation of layer ``j >= k``,
        shape (n, width_j); the last entry is the network output.
    masks : list of arrays
        ``masks[j - k]`` is the fixed ReLU mask (1.0 active, 0.0 inactive) of
        layer ``j`` (all ones for a layer without ReLU), shape (n, width_j).
    """

    def __init__(self, network: Network, layout: DeltaLayout, x: np.ndarray) -> None:
        check_fixed_pattern(network, layout.layer_index)
        self.network = network
        self.layout = layout
        self.k = layout.layer_index
        acts = network.forward_all(np.atleast_2d(x))
        self.a_aug = np.hstack([acts[self.k], np.ones((acts[self.k].shape[0], 1))])
        #: The columns of ``a_aug`` that multiply change variables (see DeltaLayout.aug_cols).
        self.a_sel = self.a_aug[:, layout.aug_cols]
        self.pre0, self.masks = [], []
        for j in range(self.k, network.n_layers):
            layer = network.layers[j]
            pre = acts[j] @ layer.weight.T + layer.bias
            self.pre0.append(pre)
            self.masks.append((pre > 0).astype(np.float64) if layer.relu else np.ones_like(pre))

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.a_aug.shape[0])

    def linear_pre(self, d: np.ndarray) -> list[np.ndarray]:
        """Pre-activations of layers ``k..L-1`` under change ``d`` with patterns fixed.

        Returns a list like :attr:`pre0` (exact while every sign row holds).
        """
        dw, db = self.layout.to_matrices(d)
        delta = self.a_aug @ np.hstack([dw, db[:, None]]).T
        out = [self.pre0[0] + delta]
        for offset, j in enumerate(range(self.k + 1, self.network.n_layers), start=1):
            delta = (delta * self.masks[offset - 1]) @ self.network.layers[j].weight.T
            out.append(self.pre0[offset] + delta)
        return out

    def gradient_to_layer(self, samples: np.ndarray, j: int, c: np.ndarray) -> np.ndarray:
        """Gradient of ``c . pre_j`` w.r.t. the repaired layer's pre-activation.

        Parameters
        ----------
        samples : int array, shape (r,)
        j : int
            Layer whose pre-activation the functional reads (``j >= k``).
        c : array, shape (r, width_j)

        Returns
        -------
        array, shape (r, n_out_k)
        """
        g = np.asarray(c, dtype=np.float64)
        for m in range(j, self.k, -1):
            g = (g @ self.network.layers[m].weight) * self.masks[m - 1 - self.k][samples]
        return g

    def coefficient_rows(self, samples: np.ndarray, j: int,
                         c: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """Rows of ``c . pre_j(sample) = const + row . d`` for a batch of functionals.

        Parameters
        ----------
        samples : int array, shape (r,)
        j : int
        c : array, shape (r, width_j)

        Returns
        -------
        (rows, const) : CSR matrix of shape (r, n_vars), array of shape (r,)
        """
        samples = np.asarray(samples, dtype=np.int64)
        c = np.asarray(c, dtype=np.float64)
        const = np.einsum("rw,rw->r", c, self.pre0[j - self.k][samples])
        g = self.gradient_to_layer(samples, j, c)[:, self.layout.rows]
        n_aug = self.layout.n_aug
        r_idx, u_idx = np.nonzero(g)
        vals = (g[r_idx, u_idx][:, None] * self.a_sel[samples[r_idx]]).ravel()
        rows = np.repeat(r_idx, n_aug)
        cols = (u_idx[:, None] * n_aug + np.arange(n_aug)[None, :]).ravel()
        keep = vals != 0.0
        matrix = sp.csr_matrix((vals[keep], (rows[keep], cols[keep])),
                               shape=(samples.shape[0], self.layout.n_vars))
        return matrix, const


@dataclass
class RowFamily:
    """Linear rows ``lower <= c . pre_j(sample) <= upper`` added lazily.

    One family holds functionals of a single layer ``j``; ``added`` marks the
    rows already in the problem.
    """

    layer: int
    samples: np.ndarray
    c: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    added: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.added = np.zeros(self.samples.shape[0], dtype=bool)

    def violation(self, pre: list[np.ndarray], k: int) -> np.ndarray:
        """Amount by which each row is violated under pre-activations ``pre`` (r,)."""
        values = np.einsum("rw,rw->r", self.c, pre[self.layer - k][self.samples])
        return np.maximum(self.lower - values, values - self.upper)


def sign_family(model: FixedPatternModel, j: int, samples: np.ndarray,
                units: np.ndarray) -> RowFamily:
    """Sign rows fixing the original ReLU state of ``units`` of layer ``j`` for ``samples``."""
    width = model.pre0[j - model.k].shape[1]
    s_grid, u_grid = np.meshgrid(samples, units, indexing="ij")
    s_flat, u_flat = s_grid.ravel(), u_grid.ravel()
    active = model.masks[j - model.k][s_flat, u_flat] > 0
    c = np.zeros((s_flat.shape[0], width))
    c[np.arange(s_flat.shape[0]), u_flat] = 1.0
    lower = np.where(active, 0.0, -np.inf)
    upper = np.where(active, np.inf, 0.0)
    return RowFamily(j, s_flat, c, lower, upper)


def pattern_families(model: FixedPatternModel, samples: np.ndarray) -> list[RowFamily]:
    """Sign-row families for every ReLU layer from the repaired one on."""
    families = []
    net = model.network
    for j in range(model.k, net.n_layers):
        if not net.layers[j].relu:
            continue
        units = model.layout.rows if j == model.k else np.arange(net.layers[j].out_features)
        families.append(sign_family(model, j, samples, units))
    return families


class ProblemBuilder:
    """Collects columns and row blocks, then emits one :class:`LinearProblem`."""

    def __init__(self) -> None:
        self._lb: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self._cost: list[np.ndarray] = []
        self._int: list[np.ndarray] = []
        self._blocks: list[tuple[sp.coo_matrix, np.ndarray, np.ndarray]] = []
        self.n_cols = 0

    def add_columns(self, n: int, lower: float | np.ndarray, upper: float | np.ndarray,
                    cost: float | np.ndarray = 0.0, integer: bool = False) -> int:
        """Append ``n`` columns; returns the index of the first."""
        start = self.n_cols
        self._lb.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)))
        self._ub.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)))
        self._cost.append(np.broadcast_to(np.asarray(cost, dtype=np.float64), (n,)))
        self._int.append(np.full(n, integer))
        self.n_cols += n
        return start

    def add_rows(self, matrix: sp.spmatrix, lower: np.ndarray, upper: np.ndarray,
                 col_offset: int = 0) -> None:
        """Append rows ``lower <= matrix @ x[col_offset:col_offset + ncols] <= upper``."""
        coo = sp.coo_matrix(matrix)
        shifted = sp.coo_matrix((coo.data, (coo.row, coo.col + col_offset)),
                                shape=(coo.shape[0], col_offset + coo.shape[1]))
        self._blocks.append((shifted, np.asarray(lower, dtype=np.float64),
                             np.asarray(upper, dtype=np.float64)))

    def add_triplets(self, n_rows: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
                     lower: np.ndarray, upper: np.ndarray) -> None:
        """Append ``n_rows`` rows given as (row, global column, value) triplets."""
        coo = sp.coo_matrix((vals, (rows, cols)), shape=(n_rows, int(np.max(cols, initial=0)) + 1))
        self._blocks.append((coo, np.asarray(lower, dtype=np.float64),
                             np.asarray(upper, dtype=np.float64)))

    def build(self, name: str) -> LinearProblem:
        """Assemble the problem (all blocks padded to the final column count)."""
        mats = []
        for coo, _, _ in self._blocks:
            mats.append(sp.coo_matrix((coo.data, (coo.row, coo.col)),
                                      shape=(coo.shape[0], self.n_cols)))
        A = sp.vstack(mats, format="csr") if mats else sp.csr_matrix((0, self.n_cols))
        lower = np.concatenate([b[1] for b in self._blocks]) if self._blocks else np.zeros(0)
        upper = np.concatenate([b[2] for b in self._blocks]) if self._blocks else np.zeros(0)
        return LinearProblem(np.concatenate(self._cost), A, lower, upper,
                             np.concatenate(self._lb), np.concatenate(self._ub),
                             np.concatenate(self._int), name)


def add_norm_objective(builder: ProblemBuilder, n_delta: int, norm: str, mix_weight: float,
                       max_delta: float) -> None:
    """Add the change columns ``d`` (first) and the objective measuring them.

    ``"l1"``: ``min sum t`` with ``t >= |d|``; ``"linf"``: ``min s`` with
    ``s >= |d_i|``; ``"mix"``: ``min sum t + mix_weight * s``.  ``d`` must be the
    first ``n_delta`` columns of ``builder``.
    """
    start = builder.add_columns(n_delta, -max_delta, max_delta)
    if start != 0:
        raise ValueError("the change variables must be the first columns")
    eye = sp.identity(n_delta, format="csr")
    if norm in ("l1", "mix"):
        t = builder.add_columns(n_delta, 0.0, max_delta, cost=1.0)
        block = sp.hstack([sp.vstack([eye, -eye]), sp.csr_matrix((2 * n_delta, t - n_delta)),
                           sp.vstack([-eye, -eye])])
        builder.add_rows(block, np.full(2 * n_delta, -np.inf), np.zeros(2 * n_delta))
    if norm in ("linf", "mix"):
        weight = 1.0 if norm == "linf" else mix_weight
        s = builder.add_columns(1, 0.0, max_delta, cost=weight)
        ones = sp.csr_matrix(-np.ones((2 * n_delta, 1)))
        block = sp.hstack([sp.vstack([eye, -eye]), sp.csr_matrix((2 * n_delta, s - n_delta)), ones])
        builder.add_rows(block, np.full(2 * n_delta, -np.inf), np.zeros(2 * n_delta))
