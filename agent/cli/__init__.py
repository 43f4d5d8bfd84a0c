"""Agent CLI: the ``netsonde-agent`` commands (``main``: probe; ``daemon``: enroll, run,
status) and how their results are shown (``output``, ``targets``).

Standard library only at import time, so ``--help`` starts fast on a Raspberry Pi.
"""
