"""The `heroes` command (also `python -m heroes`): serve the lab, run lessons, seed data, migrate, bench.

app.py       the Typer app, `serve` and `up` (what `make run` runs), the database options
lessons.py   `heroes lessons`, `heroes lesson SLUG`
seed.py      `heroes seed`, `heroes db upgrade | downgrade | current`
lab.py       `heroes lab reset [SLUG]`: the running lab's lesson data and the demo data back
bench.py     `heroes bench SUITE`
workshop.py  `heroes workshop [SLUG] [--watch | --hint | --reset]`
"""

from heroes.cli import bench, lab, lessons, seed, workshop  # noqa: F401  (each registers its commands)
from heroes.cli.app import app

__all__ = ["app"]
