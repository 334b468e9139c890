"""A profile's rules (issue 27): each active rule in plain words (crm_sync.web.rule_words) with how
often it fired in the recent runs and the writes it made (crm_sync.pipeline.rule_fires), and a
preview: pick a rule, see which current records it would act on and what it would write, nothing
written (crm_sync.pipeline.rules_preview evaluates; this router only renders).

The rules page shows the profile's rules and counts, no record: it needs the DAG (security.READ_DAG),
as the runs list does. The preview shows records (names, values, what would be written to them):
it needs the DAG's runs, as the review queue and the people pages do (security.READ_RUNS)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from crm_sync.profile import Profile
from crm_sync.web.dependencies import ProfileOfDag, WarehouseConnection
from crm_sync.web.pages import page
from crm_sync.web.rule_words import described
from crm_sync.web.security import READ_DAG, READ_RUNS

RULES = "/dags/{dag_id}/rules"
PREVIEW = RULES + "/preview"
RECENT_RUNS = 10  # the runs the page counts firings of, newest first

rules = APIRouter(dependencies=READ_DAG)
previews = APIRouter(dependencies=READ_RUNS)
RuleName = Annotated[str, Query(max_length=64, pattern=r"^[^\x00]*$")]


@rules.get(RULES, response_class=HTMLResponse)
def rules_page(request: Request, profile: ProfileOfDag, conn: WarehouseConnection) -> HTMLResponse:
    """Each active rule (``new_contact_tasks`` entries included), and per recent run how often it fired."""
    from crm_sync.pipeline.rule_fires import fired_per_run, totals
    from crm_sync.pipeline.run_list import newest_run_ids

    runs = newest_run_ids(conn, profile.name, RECENT_RUNS)
    return page(request, "rules.html.j2", profile=profile, rules=[described(r, profile) for r in profile.active_rules],
                runs=runs, per_run=fired_per_run(conn, profile.name, runs), totals=totals(conn, profile.name),
                disabled=[rule.name for rule in profile.rules if not rule.enabled])


def _rule(profile: Profile, name: str):
    from crm_sync.pipeline.rules_preview import rule_named

    found = rule_named(profile, name)
    if found is None:
        names = ", ".join(rule.name for rule in profile.active_rules) or "none"
        raise HTTPException(404, f"{profile.dag_id} has no active rule {name!r} (its rules: {names})")
    return found


@previews.get(PREVIEW, response_class=HTMLResponse)
def preview_page(request: Request, profile: ProfileOfDag, conn: WarehouseConnection, rule: RuleName = ""
                 ) -> HTMLResponse:
    """The records ``rule`` would act on now and what it would write; no rule named: the choice alone.
    Reads only: the request's transaction holds no write."""
    from crm_sync.pipeline.rules_preview import preview

    chosen = _rule(profile, rule.strip()) if rule.strip() else None
    shown = preview(conn, profile, chosen) if chosen is not None else None
    return page(request, "rules_preview.html.j2", profile=profile, names=[r.name for r in profile.active_rules],
                rule=described(chosen, profile) if chosen is not None else None, p=shown)
