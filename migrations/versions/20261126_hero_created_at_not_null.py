"""hero.created_at, contract: NOT NULL, now that every hero has a value

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

Step 3 of 3 (the not-null-column lesson). SET NOT NULL checks every row. PostgreSQL would do that
scan holding ACCESS EXCLUSIVE (no reads, no writes); instead, each in its own short transaction, a
CHECK constraint is added NOT VALID (instant), validated (the scan, under a lock that lets reads and
writes through), and SET NOT NULL then trusts it and skips the scan. SQLite rebuilds the table (batch
mode); the copy checks every row. A hero still without a value stops the revision before anything
changes (SQLite's rebuild, not transactional DDL for Alembic, would leave its half-built copy
behind): run 0004 first.

Downgrade: drops the NOT NULL (the column and its values stay). Brings back everything.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # AutoString: how SQLModel's `str` fields render
from alembic import context, op

from heroes.migrate import lint_ignore, outside_transaction

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_hero_created_at_not_null"
COLUMN = {
    "existing_type": sa.DateTime(timezone=True),
    "existing_server_default": sa.text("CURRENT_TIMESTAMP"),
}


def hero_table(nullable: bool) -> sa.Table | None:
    """hero before the change: what SQLite's batch mode copies when `--sql` cannot reflect it."""
    if not context.is_offline_mode():
        return None  # online, batch mode reflects the table as it is
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
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=nullable,
        ),
        sa.CheckConstraint("age BETWEEN 0 AND 10000", name="ck_hero_age_range"),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 100", name="ck_hero_name_length"),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], name="fk_hero_team_id_team"),
        sa.PrimaryKeyConstraint("id", name="pk_hero"),
        sa.Index("ix_hero_age", "age"),
        sa.Index("ix_hero_name", "name"),
        sa.Index("ix_hero_team_id", "team_id"),
    )


def upgrade() -> None:
    if not context.is_offline_mode():
        missing = op.get_bind().scalar(sa.text("SELECT count(*) FROM hero WHERE created_at IS NULL"))
        if missing:
            raise RuntimeError(f"{missing} heroes have no created_at: run 0004 (the backfill) first")
    if op.get_context().dialect.name == "postgresql":
        with outside_transaction():  # one short transaction each: no lock outlives its statement
            op.create_check_constraint(
                op.f(CHECK), "hero", "created_at IS NOT NULL", postgresql_not_valid=True
            )  # instant: existing rows are not checked
            op.execute(f"ALTER TABLE hero VALIDATE CONSTRAINT {CHECK}")  # the scan; writes go on meanwhile
            op.alter_column("hero", "created_at", nullable=False, **COLUMN)  # no scan: the CHECK proves it
            lint_ignore(
                "ban-drop-constraint", "the CHECK only spared SET NOT NULL its scan; NOT NULL holds it now"
            )
            op.drop_constraint(op.f(CHECK), "hero", type_="check")
        return
    with op.batch_alter_table("hero", copy_from=hero_table(nullable=True)) as batch:
        batch.alter_column("created_at", nullable=False, **COLUMN)


def downgrade() -> None:
    with op.batch_alter_table("hero", copy_from=hero_table(nullable=False)) as batch:
        batch.alter_column("created_at", nullable=True, **COLUMN)
