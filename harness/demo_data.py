"""Demo data for GHL and Gymdesk, and the merged result a correct sync must reach.

Deterministic (fixed seed), with timestamps in the days before ``today`` so a backfill of
the last days has something to read. The scenario covers what a real first sync meets:

- people on both sides with the same data in different formats (email case, phone format);
- conflicting edits: both sides changed a field, the later edit must win (latest_wins);
- fields empty on one side (keep non-empty) and a lead source empty on both (fallback);
- people only in GHL, people only in Gymdesk (created on the other side);
- bad rows (invalid email, unparsable phone, missing id) and one ambiguous family email;
- what the profiles' rules read (docs/rules.md): lead sources, and a lifecycle stage in a GHL custom
  field on the people only in GHL (harness/demo_apps.py adds the apps' own fields, e.g. engagement).

``expected`` lists, in canonical form, every person who must end up on both sides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

LOCATION_ID = "demo-location"
FIRST = ["Ava", "Liam", "Mia", "Noah", "Zoe", "Ethan", "Lena", "Omar", "Sofia", "Mateo", "Chloe", "Ravi", "Hana",
         "Lucas", "Nora", "Felix", "Ines", "Jonas", "Maya", "Theo"]
LAST = ["Garcia", "Nguyen", "Okafor", "Schmidt", "Rossi", "Khan", "Silva", "Müller", "Dubois", "Kowalski"]
COMPANIES = ["Acme Fitness", "Northside Gym", "Peak Physio", "Riverside CrossFit", "", "Blue Yoga"]
SOURCES = ["Website form", "Walk-in", "Referral", "Facebook ad"]
FALLBACK_SOURCE = "Gymdesk"
LIFECYCLE_FIELD = "lifecycle_stage"  # the GHL custom field the generic profile's routing rules read


@dataclass
class DemoData:
    ghl_contacts: list[dict[str, Any]] = field(default_factory=list)
    gymdesk_members: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any]] = field(default_factory=list)
    bad_records: int = 0
    ghl_children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def seeds(self) -> tuple[dict[str, list], dict[str, list]]:
        return {"contacts": self.ghl_contacts, **self.ghl_children}, {"members": self.gymdesk_members}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _phone_formats(n: int) -> tuple[str, str, str]:
    """The same US number as E.164, as GHL shows it, and as a gym's front desk types it."""
    area, line = 200 + n % 700, 1000 + n
    return f"+1415{area:03d}{line:04d}"[:12], f"+1 415-{area:03d}-{line:04d}", f"(415) {area:03d}-{line:04d}"


def build(today: date, people: int = 60, seed: int = 20261123) -> DemoData:
    rng = random.Random(seed)
    day0 = datetime.combine(today, time(), tzinfo=UTC)

    def moment(days_back: int) -> datetime:
        """A time of day on the date ``days_back`` days before today."""
        return day0 - timedelta(days=days_back) + timedelta(hours=rng.randint(1, 22), minutes=rng.randint(0, 59))

    data = DemoData()
    for i in range(people):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        e164, ghl_phone, desk_phone = _phone_formats(i)
        email = f"{first}.{last}.{i}@example.com".lower().replace("ü", "u")
        company, source = COMPANIES[i % len(COMPANIES)] or None, SOURCES[i % len(SOURCES)]
        person = {"email": email, "phone": e164, "first_name": first, "last_name": last,
                  "company_name": company, "lead_source": source}
        ghl = {"id": f"ghl{i:05d}AbCdEfGhIjK"[:20], "locationId": LOCATION_ID, "firstName": first, "lastName": last,
               "email": email.upper() if i % 5 == 0 else email, "phone": ghl_phone, "companyName": company,
               "source": source, "tags": [], "dateAdded": _iso(moment(30))}
        desk = {"id": f"mem_{1000 + i}", "first_name": f" {first} ", "last_name": last, "email": email,
                "phone": desk_phone, "company": company, "lead_source": source, "status": "active",
                "created_at": _iso(moment(30))}
        if i % 4 == 0:  # a lifecycle stage in a GHL custom field: half customers, half leads (rules route them)
            ghl["customFields"] = [{"id": LIFECYCLE_FIELD, "value": "customer" if i % 8 == 0 else "lead"}]
        ghl_at, desk_at = moment(rng.randint(1, 3)), moment(rng.randint(1, 3))
        kind = i % 6
        if kind == 1:  # conflicting edit of the company: the later edit wins
            ghl["companyName"], desk["company"] = f"{company or 'Solo'} (GHL edit)", f"{company or 'Solo'} (desk edit)"
            person["company_name"] = ghl["companyName"] if ghl_at >= desk_at else desk["company"]
        elif kind == 2:  # the phone only in GHL, a new last name only in Gymdesk: keep non-empty
            desk["phone"] = None
            desk["last_name"] = person["last_name"] = f"{last}-Lee"
            ghl["lastName"] = None
        elif kind == 3:  # lead source empty on both: the profile's fallback fills both
            ghl["source"] = desk["lead_source"] = None
            person["lead_source"] = FALLBACK_SOURCE
        ghl["dateUpdated"], desk["updated_at"] = _iso(ghl_at), _iso(desk_at)
        if i % 4 == 0 and kind not in (1, 2):  # only in GHL
            data.ghl_contacts.append(ghl)
        elif i % 4 == 1 and kind not in (1, 2):  # only in Gymdesk
            data.gymdesk_members.append(desk)
        else:
            data.ghl_contacts.append(ghl)
            data.gymdesk_members.append(desk)
        data.expected.append(person)

    # Bad rows: each stays where it is, quarantined with the rule it broke, and blocks nothing.
    bad_desk = [
        {"id": "mem_9001", "first_name": "Broken", "last_name": "Email", "email": "broken.email@@example",
         "phone": None, "company": None, "lead_source": None, "status": "active"},
        {"id": "mem_9002", "first_name": "Broken", "last_name": "Phone", "email": "broken.phone@example.com",
         "phone": "12", "company": None, "lead_source": None, "status": "active"},
        {"id": None, "first_name": "No", "last_name": "Id", "email": "no.id@example.com",
         "phone": None, "company": None, "lead_source": None, "status": "active"},
    ]
    bad_ghl = [{"id": "ghlBadPhone000000001", "locationId": LOCATION_ID, "firstName": "Bad", "lastName": "Phone",
                "email": "bad.phone@example.com", "phone": "+1 555", "tags": []}]
    # One family email shared by two gym members and one GHL contact: ambiguous, never guessed.
    family = [{"id": f"mem_95{n}", "first_name": name, "last_name": "Family", "email": "the.family@example.com",
               "phone": None, "company": None, "lead_source": "Walk-in", "status": "active"}
              for n, name in ((1, "Parent"), (2, "Teen"))]
    family_ghl = [{"id": "ghlFamily00000000001", "locationId": LOCATION_ID, "firstName": "Family",
                   "lastName": "Account", "email": "the.family@example.com", "phone": None, "tags": []}]
    for record in bad_desk + family:
        record["created_at"] = record["updated_at"] = _iso(moment(2))
        data.gymdesk_members.append(record)
    for record in bad_ghl + family_ghl:
        record["dateAdded"] = record["dateUpdated"] = _iso(moment(2))
        data.ghl_contacts.append(record)
    data.bad_records = len(bad_desk) + len(bad_ghl) + len(family) + len(family_ghl)
    return data
