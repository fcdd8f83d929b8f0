"""Repair tasks at the edge of the core (see :mod:`verirepair.task`).

Importing this package registers the built-in tasks; each module here calls
:func:`verirepair.task.register_task` with a lazy builder.  A new task adds a
module and one import line below.
"""

from verirepair.tasks import vnnlib  # noqa: F401  (registers "vnnlib")
