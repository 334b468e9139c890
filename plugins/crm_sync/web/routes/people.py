"""A profile's people: the search (name, email or phone, typed any way) and a person's page, both
records side by side, the timeline of both sides and the sync history, each entry linked to its run;
and the same as JSON (models: crm_sync.web.people_models). The warehouse searches and pages
(crm_sync.pipeline.people_pages); the search is in the query string, so it is a link to share.

A person's page shows records, as the review queue does: it needs the DAG's runs (security.READ_RUNS)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse

from crm_sync.console_urls import CONSOLE
from crm_sync.profile import Profile
from crm_sync.web.datamodels import Refusal
from crm_sync.web.dependencies import ProfileOfDag, Text, WarehouseConnection
from crm_sync.web.pages import page
from crm_sync.web.people_models import PersonCollection, PersonDetail, PersonSummary
from crm_sync.web.security import READ_RUNS

PEOPLE = "/dags/{dag_id}/people"
PERSON = PEOPLE + "/{person_id}"
API_PEOPLE, API_PERSON = "/api" + PEOPLE, "/api" + PERSON

pages = APIRouter(dependencies=READ_RUNS)
api = APIRouter(dependencies=READ_RUNS, tags=["crm-sync"])
PageNumber = Annotated[int, Query(ge=1, le=2**31 - 1, alias="page")]
PersonId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # person.person_id: an integer column


def person_url(dag_id: str, person_id: int) -> str:
    """A person's JSON, a path under the api-server."""
    return f"/{CONSOLE}" + API_PERSON.format(dag_id=dag_id, person_id=person_id)


def _detail(conn, profile: Profile, person_id: int) -> dict:
    from crm_sync.pipeline.people_pages import person_detail

    found = person_detail(conn, profile, person_id, profile.zone)
    if found is None:
        raise HTTPException(404, f"no person {person_id} of {profile.dag_id} in the warehouse (a run keeps the "
                                 "people current: search for them by name, email or phone)")
    return found


@pages.get(PEOPLE, response_class=HTMLResponse)
def people_page(request: Request, profile: ProfileOfDag, conn: WarehouseConnection, q: Text = "",
                page_: PageNumber = 1) -> HTMLResponse:
    """One page of the people matching ``q`` (everyone when empty), newest changed first."""
    from crm_sync.pipeline.people_pages import search_people

    found = search_people(conn, profile, q, page_)
    shown = found["span"]

    def link(at: int) -> str:
        return urlencode({k: v for k, v in (("q", q.strip()), ("page", at if at != 1 else "")) if v})

    return page(request, "people.html.j2", profile=profile, people=found["people"], shown=shown, q=q.strip(),
                prev=link(shown["page"] - 1) if shown["page"] > 1 else None,
                next=link(shown["page"] + 1) if shown["page"] < shown["pages"] else None)


@pages.get(PERSON, response_class=HTMLResponse)
def person_page(request: Request, profile: ProfileOfDag, conn: WarehouseConnection, person_id: PersonId
                ) -> HTMLResponse:
    found = _detail(conn, profile, person_id)
    name = " ".join(part for part in (found["first_name"], found["last_name"]) if part) or f"person {person_id}"
    return page(request, "person.html.j2", profile=profile, p=found, name=name)


@api.get(API_PEOPLE)
def list_people(profile: ProfileOfDag, conn: WarehouseConnection, q: Text = "", page_: PageNumber = 1,
                per_page: Annotated[int, Query(ge=1, le=100)] = 50) -> PersonCollection:
    """The profile's persons whose name, email or phone holds ``q`` (everyone when empty), newest
    changed first, a page at a time."""
    from crm_sync.pipeline.people_pages import search_people

    found = search_people(conn, profile, q, page_, per_page)
    shown = found["span"]
    people = [PersonSummary.model_validate({**p, "url": person_url(profile.dag_id, p["person_id"])})
              for p in found["people"]]
    return PersonCollection(people=people, total_entries=shown["total"], page=shown["page"], pages=shown["pages"],
                            per_page=shown["per_page"])


@api.get(API_PERSON, responses={404: {"model": Refusal}})
def get_person(profile: ProfileOfDag, conn: WarehouseConnection, person_id: PersonId) -> PersonDetail:
    """A person: both records, the merged one with who won each field, ``activities`` of both sides
    (each with its ``side``), newest first, and the sync history, newest first."""
    return PersonDetail.model_validate(_detail(conn, profile, person_id))
