"""heroes bench SUITE: the benchmarks, printed slowest first."""

from typing import Annotated

import typer

from heroes.cli.app import Postgres, _ready, app, console, shown, use_postgres
from heroes.cli.lessons import _memory
from heroes.config import get_settings


def bench_export(sizes: list[int], format: str) -> None:
    from rich.table import Table

    from heroes.bench import run_export_bench

    for size in sizes:
        results = run_export_bench(get_settings().database_url, size, format)
        table = Table(title=f"export {size:,} heroes as {format} on {results[0].engine}, slowest first")
        for column in ("case", "rows/s", "seconds", "peak RSS growth", "tracemalloc peak"):
            left = column == "case"
            table.add_column(column, justify="left" if left else "right", no_wrap=left)
        for r in results:
            if r.refused:
                table.add_row(r.case, r.refused, "", "", "")
                continue
            rate = f"{r.rows_per_second:,.0f}" if r.rows_per_second else ""
            seconds = f"{r.seconds:.3f}" if r.seconds is not None else ""
            table.add_row(r.case, rate, seconds, _memory(r.rss_growth_bytes), _memory(r.traced_peak_bytes))
        console.print(table)
    for r in results:
        console.print(f"  {r.label}")
    console.print(
        "peak RSS growth: the resident high-water mark during the run minus resident memory before "
        "(C buffers included); tracemalloc peak: Python allocations only. One process per case."
    )


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help="Which benchmark: evidence or export.")] = "evidence",
    requests: Annotated[int, typer.Option(min=10, help="evidence: requests per round.")] = 2000,
    rounds: Annotated[int, typer.Option(min=1, help="evidence: rounds (the median is reported).")] = 5,
    hero_id: Annotated[int, typer.Option(help="evidence: the hero to read.")] = 1,
    rows: Annotated[
        list[int] | None, typer.Option(min=1, max=1_000_000, help="export: heroes to export; repeat it.")
    ] = None,
    format: Annotated[str, typer.Option(help="export: ndjson or csv.")] = "ndjson",
    postgres: Postgres = False,
) -> None:
    """Run a benchmark suite on DATABASE_URL and print it, slowest first.

    evidence: requests/s of GET /heroes/{id} with the evidence headers on and off (a seeded database).
    export: rows/s and peak memory of every way to export heroes, beside the raw driver's read
    (the lesson's scratch database of --rows heroes; your data is not touched).
    """
    from rich.table import Table

    from heroes.bench import SUITES, recorder_cost, run_suite

    if postgres:
        use_postgres()
    if suite == "export":
        if format not in ("ndjson", "csv"):
            raise typer.BadParameter(f"format must be ndjson or csv, not {format!r}")
        _ready()
        bench_export(rows or [10_000, 100_000, 1_000_000], format)
        return
    if suite not in SUITES:
        raise typer.BadParameter(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    path = f"/heroes/{hero_id}"
    results = run_suite(suite, path, requests, rounds)
    fastest = results[-1].rate
    database = shown(get_settings().database_url)
    table = Table(title=f"GET {path}: {rounds} rounds x {requests} requests, median ({database})")
    for column in ("case", "requests/s", "wall µs/request", "CPU µs/request", "vs fastest"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for r in results:
        table.add_row(
            r.case.label,
            f"{r.rate:,.0f}",
            f"{1e6 / r.rate:,.0f}",
            f"{r.cpu * 1e6:,.0f}",
            f"{r.rate / fastest:.1%}",
        )
    console.print(table)
    if suite == "evidence":
        per_statement, per_response = recorder_cost()
        console.print(
            f"the recorder alone: {per_statement * 1e6:.2f} µs per statement, "
            f"{per_response * 1e6:.2f} µs per response (listeners and middleware timed without the app)"
        )
