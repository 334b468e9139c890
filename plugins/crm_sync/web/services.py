"""What the console shows, read from the warehouse only (run_log, quarantine, outbox, raw_record):
it works whatever the executor, since nothing is read from a worker's disk. Each function reads
through the request's connection (crm_sync.web.dependencies.WarehouseConnection).

The pipeline is imported when a page is asked for, not when the plugin loads: Airflow imports the
plugin in every component."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import HTTPException

if TYPE_CHECKING:
    from crm_sync.profile import Profile


def profiles() -> list[Profile]:
    """Every usable profile, by DAG id (one per location of a profile with several): the profiles folder
    as it is now, each file parsed again only once it changed (`profile_files`)."""
    from crm_sync.profile import per_location

    return sorted((one for parsed in profile_files() for one in per_location(parsed)), key=lambda p: p.dag_id)


def profile_files() -> list[Profile]:
    """The valid profile files of crm_sync.profile.PROFILES_DIR (read at each call, so a console test can
    point it elsewhere), as written: a file of 1,000 locations takes 0.3 s to parse, on every page
    that lists profiles, so a parse is kept while the file's size and modification time stay."""
    from crm_sync import profile

    found = []
    for path in sorted(profile.PROFILES_DIR.glob("*.yaml")):
        stat = path.stat()
        parsed = _parsed(str(path), stat.st_mtime_ns, stat.st_size)
        if not isinstance(parsed, Exception):
            found.append(parsed)
    return found


@functools.lru_cache(maxsize=512)
def _parsed(path: str, mtime_ns: int, size: int) -> Profile | Exception:
    """One profile file, or why it is not usable (crm_sync.profile.usable_profiles skips it alike)."""
    from crm_sync.profile import ProfileError, load_profile

    try:
        return load_profile(Path(path))
    except ProfileError as exc:
        return exc


def profile_of(dag_id: str) -> Profile:
    """The profile behind a crm-sync DAG, its own or its fast lane (the UI's report tab on a fast-lane
    run names that DAG); 404 for any other DAG (the UI shows our tab on every run)."""
    for profile in profiles():
        if dag_id in (profile.dag_id, profile.fast_dag_id):
            return profile
    raise HTTPException(404, f"{dag_id} is not a crm-sync DAG: no profile in include/profiles has that dag_id")


def pending_counts(conn: sa.Connection, shown: list[Profile] | None = None) -> dict[str, int]:
    """Per DAG (of ``shown``, else of every profile), how many ambiguous matches wait in its review
    queue: one query, whatever the number of profiles (crm_sync.review.pending_counts)."""
    from crm_sync import review

    chosen = profiles() if shown is None else shown
    counted = review.pending_counts(conn, [profile.name for profile in chosen])
    return {profile.dag_id: counted[profile.name] for profile in chosen}


def runs(conn: sa.Connection, profile: Profile, limit: int | None = None) -> list[dict[str, Any]]:
    """The profile's newest runs with their counts (not their writes: see crm_sync.pipeline.run_list)."""
    from crm_sync.pipeline.run_list import list_runs

    return list_runs(conn, profile) if limit is None else list_runs(conn, profile, limit=limit)


def latest(conn: sa.Connection, profile: Profile) -> dict[str, Any] | None:
    from crm_sync.pipeline.run_list import list_runs

    newest = list_runs(conn, profile, limit=1)
    return newest[0] if newest else None


def runs_page(conn: sa.Connection, profile: Profile, limit: int, offset: int, state: str | None = None,
              dry_run: bool | None = None) -> tuple[list[dict[str, Any]], int]:
    """A page of the profile's runs, newest first (offset and limit in SQL), and how many there are in
    all (those in ``state`` and with that ``dry_run``, when asked)."""
    from crm_sync.pipeline.run_list import runs_page as page

    return page(conn, profile, limit, offset, state, dry_run)


def run_state(run: dict[str, Any]) -> str:
    """running until its report step is logged; then failed if a step did not succeed, else success."""
    if not run["finished"]:
        return "running"
    return "failed" if run["failed_at"] else "success"


GHL_DAILY_LIMIT = 200_000  # calls per location and day, as GHL publishes it (shared/ref/ghl/oauth)


def place_of(profile: Profile) -> str:
    """The GHL location a profile syncs: its location id, else its connection (one connection, one
    location; an agency's connection serves many locations, each named by its id)."""
    return profile.ghl.location_id or profile.ghl.conn_id


def ghl_calls_today(conn: sa.Connection, shown: list[Profile], every: list[Profile] | None = None,
                    now: datetime | None = None) -> list[dict[str, Any]]:
    """Per GHL location of the ``shown`` profiles (`place_of`), the calls the runs of all its profiles
    (of ``every`` profile, default all) made to GHL since 00:00 UTC, against the day's limit and the
    profiles' reserve. From run_log: what each run's GHL extract and its load counted (the report's
    API calls). Only the shown profiles are named."""
    from crm_sync.warehouse.tables import run_log

    since = datetime.combine((now or datetime.now(UTC)).date(), time(), UTC)
    places = {place_of(profile) for profile in shown}
    sharing = {profile.name: profile for profile in (profiles() if every is None else every) + shown
               if place_of(profile) in places}
    rows = conn.execute(sa.select(run_log.c.profile, run_log.c.step, run_log.c.stats).where(
        run_log.c.profile.in_(list(sharing)), run_log.c.finished_at >= since, sa.or_(
            sa.and_(run_log.c.step == "extract", run_log.c.side == "ghl"),
            sa.and_(run_log.c.step == "load", run_log.c.side == "-")))).all() if shown else []
    locations = {place: {"place": place, "conn_id": None, "location_id": None, "profiles": [], "calls": 0,
                         "limit": GHL_DAILY_LIMIT, "reserve": 0, "since": since} for place in places}
    for profile in sharing.values():
        where = locations[place_of(profile)]
        where["conn_id"] = where["conn_id"] or profile.ghl.conn_id
        where["location_id"] = where["location_id"] or profile.ghl.location_id
        where["reserve"] = max(where["reserve"], profile.ghl.daily_reserve)
    for profile in shown:
        locations[place_of(profile)]["profiles"].append(profile.dag_id)
    for row in rows:
        api = (row.stats or {}).get("api") or {}
        calls = api.get("calls", 0) if row.step == "extract" else (api.get("ghl") or {}).get("calls", 0)
        locations[place_of(sharing[row.profile])]["calls"] += calls
    return sorted(locations.values(), key=lambda where: where["place"])


def review_queue(conn: sa.Connection, profile: Profile) -> list[dict[str, Any]]:
    from crm_sync import review

    return review.pending(conn, profile)


REVIEW_PER_PAGE = 20  # items (groups of records) per page of the review queue


def folded(text: Any) -> str:
    """Text as a search compares it: case and accents aside ("José" is "jose")."""
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", str(text)).casefold()
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def review_matches(item: dict[str, Any], q: str) -> bool:
    """An item of the queue one of whose records has ``q`` in its id, email or name (first, last, both)."""
    wanted = folded(q.strip())
    for rec in item["records"]:
        fields = rec["fields"] or {}
        name = " ".join(str(fields.get(k) or "") for k in ("first_name", "last_name"))
        if any(wanted in folded(value) for value in (rec["id"], fields.get("email") or "", name)):
            return True
    return False


def review_page(conn: sa.Connection, profile: Profile, q: str = "", page: int = 1, decisions_page: int = 1,
                per_page: int = REVIEW_PER_PAGE) -> dict[str, Any]:
    """One page of the review queue and one of its decisions, those matching the search ``q`` (a
    record id, an email or a name; decisions: by record id). The queue groups candidate pairs into
    items in Python (crm_sync.review.pending) and is short-lived (a run's ambiguous matches), so it
    is searched and sliced here, not in SQL."""
    from crm_sync import review
    from crm_sync.pipeline.report_pages import page_span

    items = review.pending(conn, profile)
    decided = review.decisions(conn, profile)
    if q.strip():
        wanted = folded(q.strip())
        items = [item for item in items if review_matches(item, q)]
        decided = [d for d in decided if wanted in folded(d["ghl_id"]) or wanted in folded(d["app_id"])]
    shown, done = page_span(len(items), page, per_page), page_span(len(decided), decisions_page, per_page)
    return {"items": items[shown["first"] - 1:shown["last"]] if items else [], "items_span": shown,
            "decisions": decided[done["first"] - 1:done["last"]] if decided else [], "decisions_span": done}


def review_decisions(conn: sa.Connection, profile: Profile) -> list[dict[str, Any]]:
    from crm_sync import review

    return review.decisions(conn, profile)


def report(conn: sa.Connection, profile: Profile, run_id: str, query: Any = None) -> dict[str, Any]:
    """A run's report; its writes and quarantined rows: the page ``query`` asks for
    (crm_sync.pipeline.report_pages.ReportQuery), or all of them."""
    from crm_sync.pipeline.report import build_report
    from crm_sync.warehouse.tables import run_log

    exists = conn.execute(sa.select(run_log.c.run_id).where(
        run_log.c.profile == profile.name, run_log.c.run_id == run_id).limit(1)).first()
    if exists is None:
        raise HTTPException(404, f"no run {run_id!r} of {profile.dag_id} in the warehouse (yet)")
    return build_report(conn, profile, run_id, query)
