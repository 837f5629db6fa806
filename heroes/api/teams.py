"""Teams: create, list, read with heroes (eager-loaded), rename, delete (refused while it has heroes)."""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlmodel import Session, func, select

from heroes.db import SessionDep, run_in_transaction
from heroes.models import INT32_MAX, Hero, Team, TeamCreate, TeamPublic, TeamPublicWithHeroes, TeamUpdate
from heroes.problems import Problem, integrity_kind, problem_responses

router = APIRouter(prefix="/teams", tags=["teams"])

TeamId = Annotated[int, Path(ge=1, le=INT32_MAX, description="A team's id (1 to 2147483647).")]


def valid_team(team_id: int, session: Session) -> Team:
    """The team named by the path, or a 404 (called inside a write, so that a retry reads it again)."""
    team = session.get(Team, team_id)
    if team is None:
        raise Problem(404, f"No team with id {team_id}.")
    return team


def commit_or_conflict(session: Session, name: str | None, work: Callable[[], Team]) -> Team:
    """Run `work` and commit, retried (run_in_transaction); a unique violation becomes 409 naming `name`
    (the constraint decides, not a prior SELECT)."""
    try:
        return run_in_transaction(session, work)  # run again on a serialization failure or deadlock
    except IntegrityError as exc:  # rolled back already: the session is usable again
        if integrity_kind(exc)[0] == "unique":
            raise Problem(409, f"A team named {name!r} already exists.", field="name") from None
        raise


@router.post("", status_code=201, response_model=TeamPublic, responses=problem_responses(400, 409, 422, 503))
def create_team(team_in: TeamCreate, session: SessionDep) -> Team:
    """Create a team. A name that is already taken answers 409."""

    def create() -> Team:
        team = Team.model_validate(team_in)
        session.add(team)
        return team

    team = commit_or_conflict(session, team_in.name, create)
    session.refresh(team)
    return team


@router.get("", response_model=list[TeamPublic], responses=problem_responses(422))
def read_teams(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[Team]:
    """List teams by id, `limit` (1 to 100) at a time from `offset`."""
    return list(session.exec(select(Team).order_by(Team.id).offset(offset).limit(limit)))


@router.get("/{team_id}", response_model=TeamPublicWithHeroes, responses=problem_responses(404, 422))
def read_team(team_id: TeamId, session: SessionDep) -> Team:
    """Read a team with its heroes: two statements, however many heroes it has."""
    team = session.get(Team, team_id, options=[selectinload(Team.heroes)])  # heroes in one SELECT ... IN
    if team is None:
        raise Problem(404, f"No team with id {team_id}.")
    return team


@router.patch("/{team_id}", response_model=TeamPublic, responses=problem_responses(400, 404, 409, 422, 503))
def update_team(team_id: TeamId, team_in: TeamUpdate, session: SessionDep) -> Team:
    """Change a team's name or headquarters. A name that is already taken answers 409."""

    def change() -> Team:
        team = valid_team(team_id, session)  # read again on every attempt
        team.sqlmodel_update(team_in.model_dump(exclude_unset=True))
        session.add(team)
        return team

    team = commit_or_conflict(session, team_in.name, change)
    session.refresh(team)
    return team


@router.delete("/{team_id}", status_code=204, responses=problem_responses(404, 409, 422, 503))
def delete_team(team_id: TeamId, session: SessionDep) -> Response:
    """Delete a team that has no heroes; while it has some, 409 (heroes are never orphaned)."""

    def delete() -> None:
        team = valid_team(team_id, session)
        heroes = session.exec(select(func.count()).select_from(Hero).where(Hero.team_id == team_id)).one()
        if heroes:
            raise Problem(409, f"Team {team_id} still has {heroes} hero(es): move or delete them first.")
        session.delete(team)

    try:
        run_in_transaction(session, delete)  # run again on a serialization failure or deadlock
    except IntegrityError:  # a hero joined between the count and the delete: the foreign key refuses
        raise Problem(409, f"Team {team_id} gained a hero while being deleted: try again.") from None
    return Response(status_code=204)
