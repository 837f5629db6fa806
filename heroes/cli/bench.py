"""heroes bench SUITE: the benchmarks (heroes/bench/), printed slowest first.

heroes bench evidence [--requests N] [--rounds N]             in-process, evidence on and off
heroes bench export [--rows N ...] [--format csv] [--case C]  every export way, over HTTP too
heroes bench http [--seconds S] [--rounds N] [--connections C]   the real server: lab vs extras
"""

import json
import signal
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from heroes.cli.app import Postgres, _ready, app, console, shown, use_postgres
from heroes.config import get_settings

SUITES = ("evidence", "export", "http")


def mib(size: int | None) -> str:
    return "" if size is None else f"{size / 2**20:,.1f} MiB"


def table(title: str, *columns: str) -> Table:
    """A rich table whose first column (the case) is left-aligned, the figures right-aligned."""
    result = Table(title=title)
    for i, column in enumerate(columns):
        result.add_column(column, justify="right" if i else "left", no_wrap=not i)
    return result


def bench_evidence(requests: int, rounds: int, hero_id: int, as_json: bool) -> None:
    from heroes.bench import evidence

    path = f"/heroes/{hero_id}"
    results = evidence.run(path, requests, rounds)
    per_statement, per_response = evidence.recorder_cost()
    if as_json:
        figures = [
            {"case": r.case.name, "requests_per_second": r.rate, "cpu_seconds": r.cpu} for r in results
        ]
        recorder = {"per_statement_seconds": per_statement, "per_response_seconds": per_response}
        console.print_json(json.dumps({"path": path, "results": figures, "recorder": recorder}))
        return
    fastest = results[-1].rate
    database = shown(get_settings().database_url)
    out = table(
        f"GET {path} in-process: {rounds} rounds x {requests} requests, median ({database}), slowest first",
        *("case", "requests/s", "wall µs/request", "CPU µs/request", "vs fastest"),
    )
    for r in results:
        out.add_row(
            r.case.name,
            f"{r.rate:,.0f}",
            f"{1e6 / r.rate:,.0f}",
            f"{r.cpu * 1e6:,.0f}",
            f"{r.rate / fastest:.1%}",
        )
    console.print(out)
    for r in results:
        console.print(f"  {r.case.name}: {r.case.label}")
    console.print(
        f"the recorder alone: {per_statement * 1e6:.2f} µs per statement, "
        f"{per_response * 1e6:.2f} µs per response (listeners and middleware timed without the app)"
    )


def bench_export(sizes: list[int], format: str, names: list[str] | None, as_json: bool) -> None:
    from heroes.bench import export

    everything = []
    for size in sizes:
        results = export.run(get_settings().database_url, size, format, names)
        everything += results
        if as_json:
            continue
        raw = next((r.rows_per_second for r in results if r.case.name == "raw_driver"), None)
        out = table(
            f"export {size:,} heroes as {format} on {results[0].engine}, slowest first",
            *("case", "rows/s", "vs raw driver", "seconds", "peak RSS growth", "tracemalloc peak"),
            "server peak RSS",
        )
        for r in results:
            if r.refused:
                out.add_row(r.case.name, r.refused, "", "", "", "", "")
                continue
            share = f"{r.rows_per_second / raw:.0%}" if raw and r.rows_per_second else ""
            out.add_row(
                r.case.name,
                f"{r.rows_per_second:,.0f}" if r.rows_per_second else "",
                share,
                f"{r.seconds:.3f}" if r.seconds is not None else "",
                mib(r.rss_growth_bytes),
                mib(r.traced_peak_bytes),
                mib(r.server_peak_bytes),
            )
        console.print(out)
    if as_json:
        rows = [{**asdict(r), "case": r.case.name} for r in everything]
        console.print_json(json.dumps({"format": format, "results": rows}))
        return
    for c in {r.case.name: r.case for r in everything}.values():
        console.print(f"  {c.name}: {c.label}")
    console.print(
        "peak RSS growth: the resident high-water mark during the run minus resident memory before (C "
        "buffers included; over HTTP, the server's); tracemalloc peak: Python allocations only; server "
        "peak RSS: the uvicorn process's VmHWM. One process per case."
    )


def bench_http(
    hero_id: int, team_id: int, seconds: float, rounds: int, connections: int, as_json: bool
) -> None:
    from heroes.bench import http

    client = http.client_name()
    paths = http.routes(hero_id, team_id)
    results = http.run(paths, seconds, rounds, connections)
    if as_json:
        rows = [
            {"route": r.route, "case": r.case.name, "requests_per_second": r.rate, "rounds": r.rates}
            for route in results.values()
            for r in route
        ]
        console.print_json(json.dumps({"client": client, "connections": connections, "results": rows}))
        return
    how = f"wrk -t1 -c{connections}" if client == "wrk" else f"a Python client, {connections} threads"
    database = shown(get_settings().database_url)
    goals = table(
        f"through uvicorn ({how}, {seconds:g} s x {rounds} rounds, median; {database})",
        *("route", "lab", "evidence off", "tutorial", "lab / tutorial", "lab / evidence off"),
    )
    for path, route in results.items():
        out = table(f"GET {path}, slowest first", "case", "requests/s", "rounds: min to max", "vs fastest")
        for r in route:
            spread = f"{min(r.rates):,.0f} to {max(r.rates):,.0f}"
            out.add_row(r.case.name, f"{r.rate:,.0f}", spread, f"{r.rate / route[-1].rate:.1%}")
        console.print(out)
        rate = {r.case.name: r.rate for r in route}
        goals.add_row(
            path,
            *(f"{rate[name]:,.0f}" for name in ("lab", "evidence_off", "tutorial")),
            f"{rate['lab'] / rate['tutorial']:.1%} (goal 90%)",
            f"{rate['lab'] / rate['evidence_off']:.1%} (goal 95%)",
        )
    console.print(goals)
    for c in (r.case for r in next(iter(results.values()))):
        console.print(f"  {c.name}: {c.label}")
    if client != "wrk":
        console.print("wrk is not installed: the Python client competes with the server for the CPU")


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help="Which benchmark: evidence, export or http.")] = "evidence",
    requests: Annotated[int, typer.Option(min=10, help="evidence: requests per round.")] = 2000,
    rounds: Annotated[int, typer.Option(min=1, help="evidence, http: rounds (the median is reported).")] = 5,
    hero_id: Annotated[int, typer.Option(help="evidence, http: the hero to read.")] = 1,
    team_id: Annotated[int, typer.Option(help="http: the team to read.")] = 1,
    seconds: Annotated[float, typer.Option(min=1, help="http: seconds per route, app and round.")] = 3,
    connections: Annotated[int, typer.Option(min=1, help="http: keep-alive connections at once.")] = 4,
    rows: Annotated[
        list[int] | None, typer.Option(min=1, max=1_000_000, help="export: heroes to export; repeat it.")
    ] = None,
    format: Annotated[str, typer.Option(help="export: ndjson or csv.")] = "ndjson",
    case: Annotated[list[str] | None, typer.Option(help="export: only this case; repeat it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    postgres: Postgres = False,
) -> None:
    """Run a benchmark suite on DATABASE_URL and print it, slowest first.

    evidence: requests/s of GET /heroes/{id} served in-process, the evidence headers on and off.
    export: rows/s and peak memory of every way to export heroes, in-process and over HTTP, beside
    the raw driver's read (the lesson's scratch database of --rows heroes; your data is not touched).
    http: requests/s of GET /heroes/{id}, /teams/{id} and /heroes?limit=20 through uvicorn: the lab,
    the lab with evidence off, and a tutorial-shaped app on the same database (wrk if installed).
    """
    if suite not in SUITES:
        raise typer.BadParameter(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))  # stop the servers on the way
    if format not in ("ndjson", "csv"):
        raise typer.BadParameter(f"format must be ndjson or csv, not {format!r}")
    if postgres:
        use_postgres()
    _ready()  # migrated, and the demo data if the database is empty
    if suite == "evidence":
        bench_evidence(requests, rounds, hero_id, as_json)
    elif suite == "export":
        bench_export(rows or [10_000, 100_000, 1_000_000], format, case, as_json)
    else:
        bench_http(hero_id, team_id, seconds, rounds, connections, as_json)
