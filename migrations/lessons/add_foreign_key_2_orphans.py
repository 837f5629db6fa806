"""hero.team_id: the orphans (a team_id whose team does not exist) set to NULL, so fk_3 can validate

Revision ID: fk_2
Revises: fk_1
Create Date: 2026-12-03

The add-foreign-key lesson. A hero whose team was deleted while nothing checked keeps a team_id that
points nowhere; VALIDATE CONSTRAINT (fk_3) fails on the first one. Since fk_1 no new orphan can
arrive, so the set found here is the whole set. Find them first, and keep the list (heroes.lessons.
add_foreign_key reports them):
    SELECT hero.id, hero.team_id FROM hero WHERE hero.team_id IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM team WHERE team.id = hero.team_id)
then this revision sets their team_id to NULL: the hero stays, teamless, as the API already allows
(team_id is optional). Another team may be right for them, or removing them: that is a decision for
whoever owns the data, made before this runs. An UPDATE of the orphans only: a ROW EXCLUSIVE lock on
hero (writers go on) and row locks on those few heroes.

Downgrade: nothing to undo. It cannot bring the orphans' team_ids back (they pointed at teams that no
longer exist, and the foreign key would refuse them): export the list above before upgrading.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "fk_2"
down_revision: str | None = "fk_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORPHANS = "hero.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM team WHERE team.id = hero.team_id)"


def upgrade() -> None:
    op.execute(f"UPDATE hero SET team_id = NULL WHERE {ORPHANS}")


def downgrade() -> None:
    pass  # the orphans' team_ids are gone: they named no team
