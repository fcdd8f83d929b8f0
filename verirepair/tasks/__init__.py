"""Repair tasks at the edge of the core (see :mod:`verirepair.task`).

Each module here defines a task builder; ``pyproject.toml`` offers it under the
entry-point group ``verirepair.tasks``, which is how :func:`verirepair.task.get_task`
finds it without the core naming any task.  A new task adds a module and one
entry-point line.
"""
