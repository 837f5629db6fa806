"""initial: the team and hero tables

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Downgrade: drops both tables, and every row in them with it; nothing can be brought back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # AutoString: how SQLModel's `str` fields render
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "team",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("headquarters", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 100", name=op.f("ck_team_name_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team")),
        sa.UniqueConstraint("name", name=op.f("uq_team_name")),
    )
    op.create_table(
        "hero",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("age BETWEEN 0 AND 10000", name=op.f("ck_hero_age_range")),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 100", name=op.f("ck_hero_name_length")),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], name=op.f("fk_hero_team_id_team")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hero")),
    )
    op.create_index(op.f("ix_hero_age"), "hero", ["age"], unique=False)
    op.create_index(op.f("ix_hero_name"), "hero", ["name"], unique=False)
    op.create_index(op.f("ix_hero_team_id"), "hero", ["team_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_hero_team_id"), table_name="hero")
    op.drop_index(op.f("ix_hero_name"), table_name="hero")
    op.drop_index(op.f("ix_hero_age"), table_name="hero")
    op.drop_table("hero")
    op.drop_table("team")
