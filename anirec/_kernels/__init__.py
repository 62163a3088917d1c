"""Kernel implementations: compiled Cython modules and their pure-NumPy twin (``_numpy``).

Use them through :mod:`anirec.kernels`, which checks arguments and picks the active backend.
"""
