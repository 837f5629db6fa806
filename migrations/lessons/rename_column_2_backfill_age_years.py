"""rename-column, backfill: copy hero.age into hero.age_years, 1000 heroes per transaction; validate

Revision ID: rn_2
Revises: rn_1
Create Date: 2026-12-03

Run once the release that writes both columns is deployed everywhere: from then on no new row misses
age_years, so the heroes this copies are all there is to copy (a row the old release wrote after rn_1
is among them). Batches of 1000 by id, each committed alone, so no lock outlives a batch; then, on
PostgreSQL, VALIDATE CONSTRAINT checks the CHECK rn_1 added NOT VALID (SHARE UPDATE EXCLUSIVE: writes
go on). Offline (`--sql`) there is no table to measure, so one UPDATE is printed instead.

Downgrade: nothing to undo, nothing lost. The copied values stay; rn_1's downgrade drops them with the
column. The CHECK stays validated.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from heroes.migrate import outside_transaction

revision: str = "rn_2"
down_revision: str | None = "rn_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
hero = sa.table(
    "hero", sa.column("id", sa.Integer), sa.column("age", sa.Integer), sa.column("age_years", sa.Integer)
)


def upgrade() -> None:
    missing = sa.and_(hero.c.age_years.is_(None), hero.c.age.is_not(None))
    copy = {"age_years": hero.c.age}
    if context.is_offline_mode():
        op.execute(hero.update().where(missing).values(copy))
    else:
        low, high = op.get_bind().execute(sa.select(sa.func.min(hero.c.id), sa.func.max(hero.c.id))).one()
        with outside_transaction():  # each batch commits alone: locks last one batch, not the whole table
            for start in range(low or 0, (high or -1) + 1, BATCH):
                op.execute(
                    hero.update().where(hero.c.id.between(start, start + BATCH - 1), missing).values(copy)
                )
    if op.get_context().dialect.name == "postgresql":
        with outside_transaction():  # the scan, under SHARE UPDATE EXCLUSIVE: writes go on
            op.execute("ALTER TABLE hero VALIDATE CONSTRAINT ck_hero_age_years_range")


def downgrade() -> None:
    pass
