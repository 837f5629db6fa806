"""rename-column, contract: hero.age dropped, once no running release reads or writes it

Revision ID: rn_3
Revises: rn_2
Create Date: 2026-12-03

The last step of the rename. Run it only after the release that reads age_years and writes only
age_years is deployed everywhere: the releases before it still name age in every SELECT (an ORM reads
every column it maps) or INSERT, and would fail as the drop-column lesson's old release does. The
column's CHECK and index go with it (SQLite: batch mode rebuilds the table without them).

Downgrade: adds hero.age back with its CHECK and index and copies age_years into it: every value comes
back, because age_years holds them all. It cannot bring back a running release that writes age: the
ones since rn_3 write only age_years, so deploy the dual-writing release again before going further
down. On PostgreSQL it builds the CHECK and the index the blocking way (a rollback, not a deploy).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from heroes.migrate import lint_ignore

revision: str = "rn_3"
down_revision: str | None = "rn_2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    lint_ignore(
        "ban-drop-column",
        "the rename's last step: every value is in age_years and no running release maps age",
    )
    with op.batch_alter_table("hero") as batch:
        if op.get_context().dialect.name == "sqlite":  # the rebuild would copy both, naming age
            batch.drop_index(op.f("ix_hero_age"))
            batch.drop_constraint(op.f("ck_hero_age_range"), type_="check")
        batch.drop_column("age")  # its CHECK and index go with it; the values are in age_years


def downgrade() -> None:
    with op.batch_alter_table("hero") as batch:
        batch.add_column(sa.Column("age", sa.Integer(), nullable=True))
    op.execute("UPDATE hero SET age = age_years")
    with op.batch_alter_table("hero") as batch:
        batch.create_check_constraint(op.f("ck_hero_age_range"), "age BETWEEN 0 AND 10000")
        batch.create_index(op.f("ix_hero_age"), ["age"])
