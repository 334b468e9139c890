"""What started a run, from its run_log rows alone (the console reads only the warehouse): the
schedule, a person (manual), a backfill, or webhook events; and the webhook events it carried, per
side, with the oldest one's age when the run started (each extract's handoff,
``crm_sync.pipeline.handoff.WebhookEvents``). A scheduled run carries events too: those no run used
before it.

A profile's runs come from two DAGs (issue 25): its own, and its fast lane ``<dag_id>_fast``, which
webhooks wake. Every step logs the run's DAG (``run_log.dag_id``, migration 0013); rows logged
before it name none, and their run was the profile's DAG. Links into Airflow use the run's own DAG.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from crm_sync.pipeline import handoff
from crm_sync.profile import Profile

FAST_LANE_TASK = "sync"  # the fast lane's one task (crm_sync.fast_dag): every step of its run, one log
SIDES = ("ghl", "app")
SIDE_NAMES = {"ghl": "GHL", "app": "app"}
# Airflow's run types, as a person reads them; asset_triggered: the webhooks' asset woke the run
KINDS = {"scheduled": "schedule", "manual": "manual", "backfill": "backfill", "asset_triggered": "webhook"}


def run_dag_id(steps: dict[tuple[str, str], Any], profile: Profile) -> str:
    """The DAG that ran it: any of its rows' ``dag_id`` (each step logs it), else the profile's."""
    return next((row.dag_id for row in steps.values() if getattr(row, "dag_id", None)), profile.dag_id)


def one_task(steps: dict[tuple[str, str], Any], profile: Profile) -> str | None:
    """The task that ran every step of the run, for a fast-lane run or a ``single_task`` batch DAG's (its
    task logs are that task's; both call it ``sync``)."""
    fast = run_dag_id(steps, profile) == profile.fast_dag_id
    return FAST_LANE_TASK if fast or profile.dag_shape == "single_task" else None


def carried(steps: dict[tuple[str, str], Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per side, the inbox events its extract used: how many, when the oldest arrived and how old it
    was when the run started; and the sides whose handoff this crm-sync cannot read (a newer one wrote it)."""
    events, unreadable = {}, []
    for side in SIDES:
        row = steps.get(("extract", side))
        used = handoff.WebhookEvents()
        if row is not None:
            try:
                used = handoff.of_row(row).webhook_events
            except handoff.HandoffVersionError:
                unreadable.append(side)
        events[side] = {"count": len(used.ids), "oldest_received_at": used.oldest_received_at,
                        "age_at_start_s": used.age_at_start_s}
    return events, unreadable


def run_trigger(steps: dict[tuple[str, str], Any], profile: Profile, interval_start: str | None = None,
                interval_end: str | None = None) -> dict[str, Any]:
    """What started the run and what it carried, with a ``label`` the list, the page and the exported
    report all show. ``interval_*``: its data interval (the report task's facts; ISO)."""
    run_type = next((row.run_type for row in steps.values() if row.run_type), None)
    dag_id = run_dag_id(steps, profile)
    events, unreadable = carried(steps)
    ages = [e["age_at_start_s"] for e in events.values() if e["count"] and e["age_at_start_s"] is not None]
    trigger = {
        "kind": KINDS.get(run_type or "", "other"), "run_type": run_type, "dag_id": dag_id,
        "fast_lane": dag_id == profile.fast_dag_id,
        "schedule": profile.schedule if run_type == "scheduled" else None,
        "interval_s": _seconds_between(interval_start, interval_end) if run_type in ("scheduled", "backfill") else None,
        "events": events, "event_count": sum(e["count"] for e in events.values()),
        "oldest_age_s": max(ages) if ages else None,
    }
    return {**trigger, "label": label(trigger, unreadable)}


def label(trigger: dict[str, Any], unreadable: Sequence[str] = ()) -> str:
    """One line: "schedule 0 * * * * (every 1 h)", "manual", "backfill (1 day)", "fast lane: 3 webhook
    events (GHL 2, app 1), the oldest 4.2 s old at the start", or (a batch run webhooks woke, before
    the fast lane) "woken by 2 webhook events (GHL 2)"; any other run's events follow its trigger."""
    kind, count = trigger["kind"], trigger["event_count"]
    if kind == "schedule":
        text = "schedule" + (f" {trigger['schedule']}" if trigger["schedule"] else "")
        text += f" (every {duration(trigger['interval_s'])})" if trigger["interval_s"] else ""
    elif kind == "backfill":
        text = "backfill" + (f" ({duration(trigger['interval_s'])})" if trigger["interval_s"] else "")
    elif kind == "other":
        text = trigger["run_type"] or "run type unknown"
    else:
        text = kind
    if kind == "webhook":
        text = ("fast lane: " if trigger["fast_lane"] else "woken by ") + (
            _events(trigger) if count else "webhook, no pending event used")
    elif count:
        text += f", with {_events(trigger)}"
    elif trigger["fast_lane"]:
        text = f"fast lane: {text}"
    for side in unreadable:
        text += f"; {SIDE_NAMES[side]} events unknown (a newer crm-sync wrote this run's handoff)"
    return text


def _events(trigger: dict[str, Any]) -> str:
    count = trigger["event_count"]
    sides = ", ".join(f"{SIDE_NAMES[side]} {e['count']}" for side, e in trigger["events"].items() if e["count"])
    text = f"{count} webhook event{'s' if count != 1 else ''} ({sides})"
    if trigger["oldest_age_s"] is not None:
        text += f", the oldest {duration(trigger['oldest_age_s'])} old at the start"
    return text


def duration(seconds: float) -> str:
    """A length a person reads at a glance: 4.2 s, 3 min 5 s, 2 h 30 min, 1 day."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "day" if days == 1 else "days"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n]
    return " ".join(shown[:2])


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None
