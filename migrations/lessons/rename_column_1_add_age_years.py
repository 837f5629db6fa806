"""rename-column, expand: hero.age_years beside hero.age, nullable, with age's range CHECK and index

Revision ID: rn_1
Revises:
Create Date: 2026-12-03

The rename-column lesson renames hero.age to hero.age_years without a RENAME: the running release keeps
reading and writing age throughout. This revision only adds the new column; every row has NULL there
until the release that writes both columns is deployed everywhere and rn_2 backfills. The CHECK is NOT
VALID on PostgreSQL (no scan under ACCESS EXCLUSIVE; new rows are checked, rn_2 validates the rest) and
the index is built CONCURRENTLY, as 0006 builds its own. SQLite: batch mode rebuilds the table once.

Downgrade: drops age_years, its CHECK and its index. Every value a release wrote only to age_years is
lost; none is while the releases running still write age (the dual-writing one does).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from heroes.migrate import concurrently, outside_transaction

revision: str = "rn_1"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("rename-column",)
depends_on: str | Sequence[str] | None = None

CHECK = "ck_hero_age_years_range"
INDEX = "ix_hero_age_years"


def upgrade() -> None:
    with op.batch_alter_table("hero") as batch:
        batch.add_column(sa.Column("age_years", sa.Integer(), nullable=True))  # every row: NULL
        batch.create_check_constraint(
            op.f(CHECK), "age_years BETWEEN 0 AND 10000", postgresql_not_valid=True
        )  # PostgreSQL: instant, only new rows checked until rn_2 validates
    with outside_transaction():  # CONCURRENTLY cannot run inside a transaction block
        op.create_index(op.f(INDEX), "hero", ["age_years"], postgresql_concurrently=concurrently())


def downgrade() -> None:
    with op.batch_alter_table("hero") as batch:
        if op.get_context().dialect.name == "sqlite":  # the rebuild would copy both, naming age_years
            batch.drop_index(op.f(INDEX))
            batch.drop_constraint(op.f(CHECK), type_="check")
        batch.drop_column("age_years")  # PostgreSQL drops its CHECK and index with it
