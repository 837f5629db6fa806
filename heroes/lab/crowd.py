"""A crowd: K identical requests at once through the app, and a probe request sent meanwhile.

    await crowd(app, "/lessons/blocking-event-loop/bad", 8)   -> Crowd: total_ms, db_ms, probe_ms

Everything runs in the calling event loop (heroes.lab.asgi.serve, no sockets), the loop a server's
requests share: a request that blocks it delays the others, and the probe, exactly as over HTTP. So a
route can fire a crowd at its own app (behind TestClient or uvicorn alike) and a check can too.
"""

from __future__ import annotations

import asyncio
import gc
import re
import statistics
import time
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from heroes.lab.asgi import serve

DB_MS = re.compile(r"db;dur=([\d.]+)")  # Server-Timing: a request's time in the database


class Crowd(BaseModel):
    clients: int
    statuses: dict[str, int]
    answers: list[Any] = Field(description="The distinct bodies of the 200 answers, each once.")
    total_ms: float = Field(description="From the requests sent at once to the last one answered.")
    db_ms: float | None = Field(description="One request's time in the database (the median), if recorded.")
    probe: str
    probe_ms: float = Field(description="The probe's latency, from when it was sent.")


async def crowd(
    app, path: str, clients: int, *, method: str = "GET", probe: str = "/health/live", after: float = 0.05
) -> Crowd:
    """`clients` requests to `path` at once, and GET `probe` sent `after` seconds later."""
    gc.collect()  # a collection of the whole process (a long-lived one's is long) not inside the timing
    started, ends = time.perf_counter(), []

    async def one():
        response = await serve(app, method, path)
        ends.append(time.perf_counter() - started)
        return response

    async def probing() -> float:
        await asyncio.sleep(after)
        await serve(app, "GET", probe)
        return time.perf_counter() - started - after  # from when a client would have sent it

    *responses, probe_s = await asyncio.gather(*(one() for _ in range(clients)), probing())
    done = [r for r in responses if r.status == 200]
    timings = [float(t[1]) for r in done if (t := DB_MS.search(r.headers.get("server-timing", "")))]
    answers = {repr(body): body for body in (r.json() for r in done)}
    return Crowd(
        clients=clients,
        statuses=Counter(str(r.status) for r in responses),
        answers=[answers[key] for key in sorted(answers)],
        total_ms=round(max(ends) * 1000, 1),
        db_ms=round(statistics.median(timings), 1) if timings else None,
        probe=probe,
        probe_ms=round(probe_s * 1000, 1),
    )
