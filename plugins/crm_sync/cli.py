"""Operate crm-sync by hand: the outbox (list writes, retry failed ones, discard them), the review
queue of ambiguous matches, and the pools.

    python -m crm_sync.cli outbox list --profile gymdesk [--status failed]
    python -m crm_sync.cli outbox retry --profile gymdesk (--id N ... | --all-failed)
    python -m crm_sync.cli outbox discard --profile gymdesk --id N ...
    python -m crm_sync.cli review list --profile gymdesk [--decisions] [--json]
    python -m crm_sync.cli review link --profile gymdesk --ghl ID --app ID [--user NAME]
    python -m crm_sync.cli review apart --profile gymdesk --ghl ID --app ID [--user NAME]
    python -m crm_sync.cli review undo --profile gymdesk --id N [--user NAME]
    python -m crm_sync.cli pools
    python -m crm_sync.cli rotate-token-key

A retried row goes back to ``pending`` and the next run's load sends it, unless a newer write of
the same record superseded it (its old payload would overwrite newer data: it is marked
``superseded`` instead); an unknown ``--profile`` is an error (exit 1). A discarded row is
never sent (the record is synced again only when it changes).

``review`` lists each open ambiguous match (as of the last run) with its records side by side, and
records a decision on a pair: ``link`` (the same person: the next run links and syncs them) or
``apart`` (different people: never proposed again); ``undo`` takes a decision back. The user
defaults to the login name; only ids are stored, never a copy of the records. Uses the same warehouse as the
DAGs (WAREHOUSE_URL, the warehouse_default connection, or the embedded SQLite file).

``pools`` creates the Airflow pool of each GHL location the profiles use (one slot: the
location's writes take turns, so they share its rate budget), and each agency profile's pool (its
``agency.pool_slots``: how many of its locations call GHL at once); a location's pool that exists is
left as it is, an agency's pool is resized to ``agency.pool_slots`` when it differs. Run it where the
Airflow CLI works (it writes Airflow's metadata database).

``rotate-token-key`` re-encrypts the stored OAuth tokens (the warehouse's ``oauth_token``) with the
first key of ``[core] fernet_key``: run it with ``airflow rotate-fernet-key`` while the setting
lists the new key first and the old one after it (``airflow rotate-fernet-key`` does not cover
this table). Tokens are also re-encrypted as they are read.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence

import sqlalchemy as sa

from crm_sync import review
from crm_sync.warehouse.db import engine
from crm_sync.warehouse.outbox import move
from crm_sync.warehouse.tables import outbox


def list_rows(conn: sa.Connection, profile: str, status: str | None) -> list[dict]:
    query = sa.select(outbox.c.id, outbox.c.run_id, outbox.c.side, outbox.c.op, outbox.c.target_id,
                      outbox.c.status, outbox.c.attempts, outbox.c.last_error, outbox.c.payload
                      ).where(outbox.c.profile == profile).order_by(outbox.c.id)
    if status:
        query = query.where(outbox.c.status == status)
    return [dict(row._mapping) for row in conn.execute(query)]


def known_profile(conn: sa.Connection, name: str) -> bool:
    """A profile file of that name exists, or the outbox still holds rows of it."""
    from crm_sync.paths import PROFILES_DIR

    if "/" not in name and (PROFILES_DIR / f"{name}.yaml").is_file():
        return True
    return bool(conn.scalar(sa.select(sa.exists().where(outbox.c.profile == name))))


def create_pools() -> list[str]:
    """The pool of every GHL connection the profiles use, and of every agency, created when missing; an
    agency's pool whose slots differ from its ``agency.pool_slots`` is resized to them."""
    from airflow.models.pool import Pool

    from crm_sync.profile import agency_profiles, usable_profiles

    profiles, _errors = usable_profiles()
    pools = {profile.ghl.pool_name: (1, f"crm-sync: writes to the GHL location of connection {profile.ghl.conn_id}")
             for profile in profiles}
    for agency in (profile.agency for profile in agency_profiles()):
        pools[agency.pool_name] = (agency.pool_slots, f"crm-sync: the GHL calls of agency connection "
                                   f"{agency.conn_id}'s locations, {agency.pool_slots} at once")
    agencies = {profile.agency.pool_name for profile in agency_profiles()}
    created = []
    for name, (slots, description) in sorted(pools.items()):
        existing = Pool.get_pool(name)
        if existing is None:
            Pool.create_or_update_pool(name, slots=slots, include_deferred=False, description=description)
            created.append(name)
        elif name in agencies and existing.slots != slots:  # agency.pool_slots is the profile's to say
            Pool.create_or_update_pool(name, slots=slots, include_deferred=existing.include_deferred,
                                       description=description)
            created.append(f"{name} (resized from {existing.slots} to {slots} slots)")
    return created


def show_item(item: dict) -> str:
    """One open ambiguous match as text: its records side by side, then each pair and its decision."""
    lines = [f"item {item['id']}"]
    for record in item["records"]:
        fields = record["fields"]
        shown = "  ".join(str(fields[n]) for n in ("first_name", "last_name", "email", "phone")
                          if fields.get(n) is not None) if record["staged"] else "(no longer staged)"
        lines.append(f"  {record['side']}:{record['id']:<24} {shown}")
    for pair in item["pairs"]:
        decision = pair["decision"]
        state = f"{decision['decision']} (decision {decision['id']}, next run)" if decision else "undecided"
        lines.append(f"  pair ghl:{pair['ghl_id']} app:{pair['app_id']}  {pair['reason']}  [{state}]")
    return "\n".join(lines)


def review_command(args: argparse.Namespace) -> int:
    user = getattr(args, "user", None) or getpass.getuser()
    with engine().begin() as conn:
        profile = review.resolve(args.profile)
        if args.command == "list":
            rows = review.decisions(conn, profile) if args.decisions else review.pending(conn, profile)
            for row in rows:
                print(json.dumps(row, default=str) if args.json or args.decisions else show_item(row))
            if not rows and not args.json:
                print(f"no {'decisions' if args.decisions else 'open ambiguous matches'} for {profile.name}")
            return 0
        if args.command == "undo":
            review.undo(conn, profile, args.id, user)
            print(f"decision {args.id} of {profile.name} undone by {user}; the next run honours it")
            return 0
        decision_id = review.decide(conn, profile, args.ghl, args.app, args.command, user)
    print(f"decision {decision_id}: {args.command} ghl:{args.ghl} app:{args.app} by {user}; the next run honours it")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # Airflow's logging (configured when crm_sync imports it) writes to stdout: the answer goes there,
    # so logs go to stderr, and the warehouse's migration chatter not at all.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m crm_sync.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    areas = parser.add_subparsers(dest="area", required=True)
    areas.add_parser("pools", help="create each GHL location's Airflow pool")
    areas.add_parser("rotate-token-key", help="re-encrypt the stored OAuth tokens with the newest Fernet key")
    commands = areas.add_parser("outbox").add_subparsers(dest="command", required=True)
    for name in ("list", "retry", "discard"):
        command = commands.add_parser(name)
        command.add_argument("--profile", required=True)
        if name == "list":
            command.add_argument("--status", help="pending, sent, failed, dry_run, superseded, discarded")
        else:
            command.add_argument("--id", type=int, nargs="+", dest="ids", help="outbox row ids")
        if name == "retry":
            command.add_argument("--all-failed", action="store_true")
    reviews = areas.add_parser("review").add_subparsers(dest="command", required=True)
    for name, helptext in (("list", "open ambiguous matches"), ("link", "the same person: link them"),
                           ("apart", "different people: keep them apart"), ("undo", "take a decision back")):
        command = reviews.add_parser(name, help=helptext)
        command.add_argument("--profile", required=True)
        if name == "list":
            command.add_argument("--decisions", action="store_true", help="every decision, newest first")
            command.add_argument("--json", action="store_true", help="one JSON object a line")
        elif name == "undo":
            command.add_argument("--id", type=int, required=True, help="the decision's id")
        else:
            command.add_argument("--ghl", required=True, help="the GHL contact's id")
            command.add_argument("--app", required=True, help="the app record's id")
        if name != "list":
            command.add_argument("--user", help="who decides (default: the login name)")
    args = parser.parse_args(argv)
    if args.area == "review":
        try:
            return review_command(args)
        except review.ReviewError as exc:
            print(f"review {args.command}: {exc}", file=sys.stderr)
            return 1
    if args.area == "rotate-token-key":
        from crm_sync.hooks.token_store import TokenKeyMismatch, TokenKeyMissing, rotate_all

        try:
            print(f"{rotate_all()} OAuth token row(s) re-encrypted with the first key of [core] fernet_key")
        except (TokenKeyMissing, TokenKeyMismatch) as exc:
            print(f"rotate-token-key: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.area == "pools":
        created = create_pools()
        print(f"created pools: {', '.join(created)}" if created else "every GHL location's pool exists")
        return 0
    if args.command != "list" and not args.ids and not getattr(args, "all_failed", False):
        parser.error(f"outbox {args.command} needs --id" + (" or --all-failed" if args.command == "retry" else ""))
    with engine().begin() as conn:
        if not known_profile(conn, args.profile):
            print(f"error: no profile {args.profile!r} (no include/profiles/{args.profile}.yaml and no outbox rows)",
                  file=sys.stderr)
            return 1
        if args.command == "list":
            for row in list_rows(conn, args.profile, args.status):
                print(json.dumps(row, default=str))
            return 0
        to = "pending" if args.command == "retry" else "discarded"
        moved, replaced = move(conn, args.profile, args.ids, to)
    print(f"{moved} outbox row(s) of {args.profile} now {to}")
    if replaced:
        print(f"not retried, superseded by a newer write of the same record: row(s) {', '.join(map(str, replaced))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
