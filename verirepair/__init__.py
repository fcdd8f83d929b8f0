"""verirepair: repair ReLU networks with proof.

The package is organised by pipeline stage: ``spec`` (properties), ``network``
(model and file formats), ``verify``, ``localize``, ``repair`` and ``solvers``;
``pipeline`` strings them together and ``cli`` is the only module that prints.
"""

__version__ = "0.1.0"
