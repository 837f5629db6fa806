"""hero.team_id -> team.id, NOT VALID: new rows are checked from now on, the rows already there are not

Revision ID: fk_1
Revises:
Create Date: 2026-12-03

The add-foreign-key lesson, on a legacy database whose hero.team_id never had its foreign key (the
reference schema declares fk_hero_team_id_team in 0001; this branch's constraint has a name of its
own, so it also runs, redundantly, on a database that has that one). ALTER TABLE ... ADD CONSTRAINT
... NOT VALID takes SHARE ROW EXCLUSIVE on hero and on team for an instant: no row is read. Every
INSERT and UPDATE after it is checked, so no new orphan can arrive while fk_2 clears the old ones.
It still needs that lock: behind a long transaction on hero it queues like any ALTER TABLE
(lock-queue), so the migration's lock_timeout bounds the wait. SQLite has no NOT VALID: adding a
foreign key there is a table copy (batch mode) that checks every row, so this revision does nothing
on SQLite and fk_3 adds the constraint, once fk_2 has cleared the orphans.

Downgrade: drops the constraint (the same brief lock); brings back everything: a constraint holds no data.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "fk_1"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("add-foreign-key",)
depends_on: str | Sequence[str] | None = None

FOREIGN_KEY = "fk_hero_team_id_legacy"


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        return  # no NOT VALID on SQLite: fk_3 adds the constraint, checking every row as it copies them
    op.create_foreign_key(
        FOREIGN_KEY, "hero", "team", ["team_id"], ["id"], postgresql_not_valid=True
    )  # no scan: the old rows are not checked, the new ones are


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        return
    op.drop_constraint(FOREIGN_KEY, "hero", type_="foreignkey")
