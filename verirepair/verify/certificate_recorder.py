"""What the branch and bound tells a certificate: its splits and the evidence of each exclusion.

Pipeline position: :func:`verirepair.verify.certificate_writer.certify` gives one
:class:`TreeRecorder` per property to :func:`verirepair.verify.bab.search`; the
search calls :meth:`~TreeRecorder.split` for every box it halves,
:meth:`~TreeRecorder.excluded` for the disjuncts a batch's CROWN or
alpha-CROWN bounds exclude, and :meth:`~TreeRecorder.lp_excluded` for the ones
an LP excludes.  The recorder only copies arrays (chunks per batch), so that
recording costs little next to bounding; the tree is rebuilt afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from verirepair.network.model import Network
from verirepair.verify.search_state import SpecRows

if TYPE_CHECKING:
    from verirepair.verify.bab import _Batch


class TreeRecorder:
    """Chunks of splits and exclusions of one search (see the module docstring).

    Parameters
    ----------
    network : Network -- the searched network (with its linear last layer)
    spec : SpecRows -- the search's rows; ``spec.weights`` maps a row to its disjunct's rows
    """

    def __init__(self, network: Network, spec: SpecRows) -> None:
        self.spec = spec
        #: hidden layers whose ReLU slopes a certificate lists (the checker's ReLU layers)
        self.relu_layers = [j for j in range(network.n_layers - 1) if network.layers[j].relu]
        self.splits: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.records: list[tuple[np.ndarray, ...]] = []
        self.lp: list[tuple[np.ndarray, np.ndarray, int]] = []

    def split(self, lower: np.ndarray, upper: np.ndarray, dim: np.ndarray, mid: np.ndarray) -> None:
        """Boxes (n, d) halved along ``dim`` (n,) at ``mid`` (n,)."""
        self.splits.append((lower.copy(), upper.copy(), dim.copy(), mid.copy()))

    def excluded(self, batch: _Batch, newly: np.ndarray) -> None:
        """Disjuncts ``newly`` (n, P) excluded on the batch's boxes by row ``batch.best_row``."""
        box, poly = np.nonzero(newly)
        if box.size == 0:
            return
        rows = batch.best_row[box, poly]
        slope_rows = np.full(box.size, -1, dtype=np.int64)
        slopes = np.zeros((0, 0), dtype=np.float32)
        if batch.alpha is not None:
            hard, better, alpha_slopes = batch.alpha
            position = np.full(len(batch), -1, dtype=np.int64)
            position[hard] = np.arange(hard.size)
            h = position[box]
            used = (h >= 0) & better[np.maximum(h, 0), rows]
            if used.any() and alpha_slopes:
                picked = [alpha_slopes[j][h[used], rows[used]] for j in self.relu_layers]
                slopes = np.hstack(picked).astype(np.float32)
                slope_rows[used] = np.arange(int(used.sum()))
        self.records.append((batch.lower[box].copy(), batch.upper[box].copy(), poly.astype(np.int64),
                             self.spec.weights[rows], slope_rows, slopes))

    def lp_excluded(self, lower: np.ndarray, upper: np.ndarray, poly: int) -> None:
        """Disjunct ``poly`` excluded on one box by an LP (the writer re-derives its evidence)."""
        self.lp.append((lower.copy(), upper.copy(), poly))
