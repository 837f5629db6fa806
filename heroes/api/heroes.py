"""Heroes: create, filter and page, export, read with its team and an ETag, update with If-Match, delete."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlmodel import Session, func, select

from heroes import export
from heroes.db import EngineDep, SessionDep, run_in_transaction
from heroes.models import (
    AGE_MAX,
    INT32_MAX,
    NAME_MAX,
    Hero,
    HeroCreate,
    HeroPublic,
    HeroPublicWithTeam,
    HeroUpdate,
    Team,
    Text,
)
from heroes.problems import Problem, integrity_kind, problem_responses

router = APIRouter(prefix="/heroes", tags=["heroes"])

HeroId = Annotated[int, Path(ge=1, le=INT32_MAX, description="A hero's id (1 to 2147483647).")]
IfMatch = Annotated[
    str | None,
    Header(description='The ETag you read, e.g. `"3"`: the update applies only if the hero is still there.'),
]


def etag(hero: Hero) -> str:
    return f'"{hero.version}"'


def etag_matches(header: str, version: int, *, weak: bool = False) -> bool:
    """If-Match: `*`, or a list of strong entity tags (`"3", "4"`); bare numbers are accepted too.

    If-None-Match compares weakly (RFC 9110): there `W/"3"` matches version 3 as well.
    """
    tags = [tag.strip() for tag in header.split(",")]
    if weak:
        tags = [tag.removeprefix("W/") for tag in tags]
    return "*" in tags or any(not tag.startswith("W/") and tag.strip('"') == str(version) for tag in tags)


def ensure_team_exists(session: Session, team_id: int | None) -> None:
    """A hero may only join a team that exists: 422 naming `team_id` otherwise."""
    if team_id is not None and session.get(Team, team_id) is None:
        raise Problem(422, f"No team with id {team_id}.", field="team_id")


def hero_or_404(session: Session, hero_id: int, *options) -> Hero:
    hero = session.get(Hero, hero_id, options=list(options))
    if hero is None:
        raise Problem(404, f"No hero with id {hero_id}.")
    return hero


@contextmanager
def team_must_still_exist(team_id: int | None) -> Iterator[None]:
    """Around a write: if the team vanished after our check, the foreign key refuses and we say so (422)."""
    try:
        yield
    except IntegrityError as exc:  # run_in_transaction rolled back already
        if integrity_kind(exc)[0] == "foreign_key":
            raise Problem(422, f"No team with id {team_id} (it was just deleted).", field="team_id") from None
        raise


@router.post("", status_code=201, response_model=HeroPublic, responses=problem_responses(400, 422, 503))
def create_hero(hero_in: HeroCreate, session: SessionDep, response: Response) -> Hero:
    """Create a hero. `secret_name` is stored and never returned; an unknown `team_id` answers 422."""

    def create() -> Hero:
        ensure_team_exists(session, hero_in.team_id)
        hero = Hero.model_validate(hero_in)
        session.add(hero)
        return hero

    with team_must_still_exist(hero_in.team_id):
        hero = run_in_transaction(session, create)  # run again on a serialization failure or deadlock
    session.refresh(hero)
    response.headers["ETag"] = etag(hero)
    response.headers["Location"] = f"/heroes/{hero.id}"
    return hero


class HeroFilter(BaseModel):
    """GET /heroes's query parameters, validated as one model (one validation, not six)."""

    offset: int = Field(0, ge=0, le=INT32_MAX)
    limit: int = Field(20, ge=1, le=100)
    name: Text | None = Field(None, min_length=1, max_length=NAME_MAX, description="part of the name")
    min_age: int | None = Field(None, ge=0, le=AGE_MAX)
    max_age: int | None = Field(None, ge=0, le=AGE_MAX)
    team_id: int | None = Field(None, ge=1, le=INT32_MAX)


@router.get("", response_model=list[HeroPublic], responses=problem_responses(422))
def read_heroes(session: SessionDep, query: Annotated[HeroFilter, Query()]) -> list[Hero]:
    """List heroes by id, filtered by part of the name (any case), age range and team."""
    heroes = select(Hero)
    if query.name is not None:
        heroes = heroes.where(func.lower(Hero.name).contains(query.name.lower(), autoescape=True))
    if query.min_age is not None:
        heroes = heroes.where(Hero.age >= query.min_age)
    if query.max_age is not None:
        heroes = heroes.where(Hero.age <= query.max_age)
    if query.team_id is not None:
        heroes = heroes.where(Hero.team_id == query.team_id)
    return list(session.exec(heroes.order_by(Hero.id).offset(query.offset).limit(query.limit)))


@router.get("/export", response_class=Response, responses={**export.RESPONSES, **problem_responses(422)})
def export_heroes(
    engine: EngineDep,
    format: export.FormatQuery = "ndjson",
) -> Response:
    """Every hero, streamed as NDJSON or CSV (a header row), by id; `secret_name` is never exported."""
    return export.export_response(export.copy_export(engine, format), format)  # the database writes the lines


@router.get(
    "/{hero_id}",
    response_model=HeroPublicWithTeam,
    responses={304: {"description": "Not Modified"}, **problem_responses(404, 422)},
)
def read_hero(
    hero_id: HeroId,
    session: SessionDep,
    request: Request,
    response: Response,
) -> Hero | Response:
    """Read a hero with its team, in one statement; the `ETag` carries its version."""
    hero = hero_or_404(session, hero_id, joinedload(Hero.team))  # the team in the same SELECT
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and etag_matches(if_none_match, hero.version, weak=True):
        return Response(status_code=304, headers={"ETag": etag(hero)})
    response.headers["ETag"] = etag(hero)
    return hero


@router.patch("/{hero_id}", response_model=HeroPublic, responses=problem_responses(400, 404, 412, 422, 503))
def update_hero(
    hero_id: HeroId,
    hero_in: HeroUpdate,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> Hero:
    """Change some of a hero's fields. With `If-Match`, a stale version answers 412 and changes nothing."""
    changes = hero_in.model_dump(exclude_unset=True)

    def change() -> Hero:
        hero = hero_or_404(session, hero_id)  # read again on every attempt
        if if_match is not None and not etag_matches(if_match, hero.version):
            raise Problem(412, f"Hero {hero_id} is at version {hero.version} now: read it again, then retry.")
        ensure_team_exists(session, changes.get("team_id"))
        statement = update(Hero).where(Hero.id == hero_id).values(**changes, version=Hero.version + 1)
        if if_match is not None:  # compare-and-set: only if nobody wrote since we read
            statement = statement.where(Hero.version == hero.version)
        if session.exec(statement, execution_options={"synchronize_session": False}).rowcount != 1:
            if if_match is None:  # no version condition: the row itself is gone
                raise Problem(404, f"No hero with id {hero_id} (it was just deleted).")
            raise Problem(
                412, f"Hero {hero_id} was changed by someone else meanwhile: read it again, then retry."
            )
        return hero

    with team_must_still_exist(changes.get("team_id")):  # the UPDATE's foreign key is checked as it runs
        hero = run_in_transaction(session, change)  # run again on a serialization failure or deadlock
    session.refresh(hero)
    response.headers["ETag"] = etag(hero)
    return hero


@router.delete("/{hero_id}", status_code=204, responses=problem_responses(404, 422, 503))
def delete_hero(hero_id: HeroId, session: SessionDep) -> Response:
    """Delete a hero."""
    run_in_transaction(session, lambda: session.delete(hero_or_404(session, hero_id)))
    return Response(status_code=204)
