"""hero.created_at, expand: a nullable column, and a server default for the rows to come

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Step 1 of 3 (the not-null-column lesson). `ADD COLUMN created_at ... NOT NULL` fails on a table
that has rows: they have no value. So the column arrives nullable and without a default (the heroes
already there keep NULL until 0004 fills them in batches); then it gets a server default, so every
hero inserted from now on (ORM, COPY, executemany alike) is stamped by the database. Two statements
on purpose: `ADD COLUMN ... DEFAULT CURRENT_TIMESTAMP` would stamp the existing rows at once on
PostgreSQL, and SQLite refuses a non-constant default in ADD COLUMN. SQLite changes a column's
default only by rebuilding the table (batch mode copies every row, created_at included, as NULL).

Downgrade: drops hero.created_at. The heroes are kept; their timestamps (backfilled or stamped
by the default) are lost, and an upgrade stamps them anew.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # AutoString: how SQLModel's `str` fields render
from alembic import context, op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def hero_table() -> sa.Table:
    """hero once created_at is added: what SQLite's batch mode copies when `--sql` cannot reflect it."""
    name = sqlmodel.sql.sqltypes.AutoString(length=100)
    return sa.Table(
        "hero",
        sa.MetaData(),
        sa.Column("name", name, nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_name", name, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("nickname", name, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("age BETWEEN 0 AND 10000", name="ck_hero_age_range"),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 100", name="ck_hero_name_length"),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], name="fk_hero_team_id_team"),
        sa.PrimaryKeyConstraint("id", name="pk_hero"),
        sa.Index("ix_hero_age", "age"),
        sa.Index("ix_hero_name", "name"),
        sa.Index("ix_hero_team_id", "team_id"),
    )


def upgrade() -> None:
    op.add_column("hero", sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))  # rows: NULL
    with op.batch_alter_table("hero", copy_from=hero_table() if context.is_offline_mode() else None) as batch:
        batch.alter_column(
            "created_at",
            existing_type=sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),  # only rows inserted from now on
        )


def downgrade() -> None:
    op.drop_column("hero", "created_at")
