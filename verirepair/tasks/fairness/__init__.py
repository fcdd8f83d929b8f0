"""Fairness repair (CARE's first task) on UCI Adult and German Credit.

Pipeline position: a task at the edge.  :mod:`.data` reads and encodes the data
sets, :mod:`.protected` says which inputs a protected attribute occupies,
:mod:`.measure` estimates the individual discrimination rate, :mod:`.product`
proves fairness per individual with the core's verifier, :mod:`.localization`
finds the guilty neurons with the causal method and :mod:`.repair` changes
one layer by LP until fresh samples show no more discrimination.
"""
