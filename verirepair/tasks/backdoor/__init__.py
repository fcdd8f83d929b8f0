"""Backdoor removal on the 8x8 digits (CARE's third repair), with proofs of removal.

Pipeline position: a task at the edge.  :mod:`.data` loads scikit-learn's
bundled digits (64 pixels, row-major, divided by 16); :mod:`.trigger` defines
trigger patterns (mask and pattern) and stamps them; :mod:`.plant` trains a
backdoored classifier and measures attack success; :mod:`.reverse` recovers
an unknown trigger Neural-Cleanse style; :mod:`.removal` localizes the neurons
the trigger acts through (the core's causal method), repairs one layer by the
core's LP (:mod:`verirepair.tasks.classify_repair`) and measures;
:mod:`.proof` proves, per test image, that no value of the trigger pixels makes
the network answer the target class (the core's verifier); :mod:`.report`
writes ``report.json`` / ``report.md`` and the plots.
"""
