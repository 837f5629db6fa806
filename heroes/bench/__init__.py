"""Benchmarks: the same task done several ways, each a function registered by `@case` (its docstring its
label), reported slowest first: the shape of SQLAlchemy's examples/performance. One registry
(registry.py), three suites, each a module that registers its cases and runs them:

    evidence   requests/s of GET /heroes/{id} served in-process, the evidence headers on and off
    export     rows/s and peak memory of every way to export the heroes, in-process and over HTTP,
               beside the raw driver
    http       requests/s of three reads through the real server: the lab, evidence off, and a
               tutorial-shaped app on the same database

In-process requests go through heroes.lab.asgi.serve; real servers are started by server.py
(uvicorn on 127.0.0.1, one worker, a subprocess) and always stopped.
"""

from heroes.bench import evidence, export, http  # noqa: F401  (each registers its cases)
from heroes.bench.registry import CASES, Case, case, cases, slowest_first

__all__ = ["CASES", "Case", "case", "cases", "evidence", "export", "http", "slowest_first"]
