"""`python -m heroes` is the `heroes` command."""

from heroes.cli import app

app(prog_name="heroes")
