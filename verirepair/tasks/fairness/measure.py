"""Individual discrimination, measured as CARE measures it, with confidence intervals.

Pipeline position: before and after the repair.  An input is *discriminated*
with respect to a protected attribute when changing only that attribute to one
of its other values (:meth:`ProtectedAttribute.variants`) changes the predicted
class.  The rate is estimated on two samples, both reported:

* ``data``: the individuals of a data split, as they are (the test split for
  the reports: held out from training and repair);
* ``domain``: inputs drawn uniformly from the feature domain (each numeric
  feature uniform over its training range, each categorical feature uniform
  over its values), seeded.

The rate is a statistical estimate: the interval is an exact Clopper-Pearson
interval for the rate of the sampled population at the stated confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verirepair.network.model import Network
from verirepair.tasks.classifier import predict, proportion_ci
from verirepair.tasks.fairness.data import Encoding
from verirepair.tasks.fairness.protected import ProtectedAttribute

__all__ = ["DiscriminationEstimate", "discriminated", "estimate", "sample_domain"]

#: Default confidence of the reported intervals.
CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class DiscriminationEstimate:
    """A discrimination rate ``k / n`` and its interval."""

    attribute: str
    source: str            # "data" or "domain"
    n: int
    k: int
    ci_low: float
    ci_high: float
    confidence: float

    @property
    def rate(self) -> float:
        """``k / n``."""
        return self.k / self.n

    def to_json(self) -> dict:
        """JSON-ready form."""
        return {"attribute": self.attribute, "source": self.source, "n": self.n, "discriminated": self.k,
                "rate": self.rate, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "confidence": self.confidence}


def discriminated(network: Network, x: np.ndarray, attribute: ProtectedAttribute
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of ``x`` are discriminated, and by which replacement value.

    Parameters
    ----------
    network : Network
    x : array, shape (n, d)
    attribute : ProtectedAttribute

    Returns
    -------
    (mask, flipped) : arrays of shapes (n,) bool and (n, k) bool
        ``flipped[i, v]``: replacing the attribute of row ``i`` by value ``v``
        (another value than its own) changes the class; ``mask = flipped.any(1)``.
    """
    x = np.atleast_2d(x)
    base = predict(network, x)
    variants, other = attribute.variants(x)
    n, k, d = variants.shape
    classes = predict(network, variants.reshape(n * k, d)).reshape(n, k)
    flipped = (classes != base[:, None]) & other
    return flipped.any(axis=1), flipped


def sample_domain(encoding: Encoding, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` inputs uniform over the feature domain, shape ``(n, encoding.n_inputs)``.

    Numeric features are uniform on ``[0, 1]`` (the training range in encoded
    units); each categorical feature takes one of its values uniformly.
    """
    x = np.zeros((n, encoding.n_inputs))
    for spec in encoding.features:
        if spec.kind == "numeric":
            x[:, spec.start] = rng.random(n)
        else:
            x[np.arange(n), spec.start + rng.integers(0, spec.width, size=n)] = 1.0
    return x


def estimate(network: Network, x: np.ndarray, attribute: ProtectedAttribute, source: str,
             confidence: float = CONFIDENCE) -> DiscriminationEstimate:
    """The discrimination rate of ``network`` on the sample ``x`` (shape ``(n, d)``, ``n >= 1``)."""
    mask, _ = discriminated(network, x, attribute)
    k = int(np.count_nonzero(mask))
    low, high = proportion_ci(k, int(mask.size), confidence)
    return DiscriminationEstimate(attribute.name, source, int(mask.size), k, low, high, confidence)
