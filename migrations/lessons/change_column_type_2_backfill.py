"""change-column-type, backfill: age_big = age for the heroes already there, 1000 per transaction

Revision ID: ct_2
Revises: ct_1
Create Date: 2026-12-03

Each batch commits alone: its row locks last one batch, and writers go on meanwhile (an UPDATE takes
ROW EXCLUSIVE, which no INSERT, UPDATE or DELETE of another row waits for). ct_1's trigger covers the
rows written while it runs.

Downgrade: nothing to undo. The copies stay in age_big until ct_1's downgrade drops the column; hero.age
was never touched.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from heroes.migrate import outside_transaction

revision: str = "ct_2"
down_revision: str | None = "ct_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
hero = sa.table("hero", sa.column("id", sa.Integer), sa.column("age", sa.Integer), sa.column("age_big"))


def upgrade() -> None:
    missing = sa.and_(hero.c.age.is_not(None), hero.c.age_big.is_(None))
    copy = {"age_big": hero.c.age}
    if context.is_offline_mode():
        op.execute(hero.update().where(missing).values(copy))
        return
    low, high = op.get_bind().execute(sa.select(sa.func.min(hero.c.id), sa.func.max(hero.c.id))).one()
    if low is None:
        return
    with outside_transaction():  # each batch commits alone: locks last one batch, not the whole table
        for start in range(low, high + 1, BATCH):
            op.execute(hero.update().where(hero.c.id.between(start, start + BATCH - 1), missing).values(copy))


def downgrade() -> None:
    pass
