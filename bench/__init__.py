"""Benchmarks of Lumina GitOps on real parts: ``nox -s bench`` (``python -m bench.run``).

One module per measurement group; :mod:`bench.run` runs them in order, :mod:`bench.report`
prints the table and writes ``.lumina/bench/latest.json``. Benchmarks print figures and
compare them with targets; nothing here asserts on time.
"""
