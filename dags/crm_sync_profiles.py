"""crm-sync Airflow DAGs: one DAG per valid sync profile in include/profiles/*.yaml, and a fast lane
beside it for each profile woken by webhooks (``Profile.fast_dag_id``); an agency profile's DAGs are
one per discovered location that syncs, beside the agency's discovery DAG (``<dag_id>_discover``).

Parsing this file reads the profile YAML and nothing else: no connection, no network. The one
exception is an agency profile, whose locations are read from the warehouse's book (read only,
``crm_sync.profile_agency.read_book``; its last snapshot when the warehouse cannot be read), never
from GHL. An invalid profile is left out here (the others keep running) and reported by
crm_sync_profile_errors.py.
"""

from crm_sync.agency_dag import build_discover_dag, discover_dag_id
from crm_sync.dag_factory import build_dag
from crm_sync.fast_dag import build_fast_dag
from crm_sync.profile import agency_profiles, usable_profiles

for _profile in usable_profiles()[0]:
    globals()[_profile.dag_id] = build_dag(_profile)
    if _profile.fast_dag_id:
        globals()[_profile.fast_dag_id] = build_fast_dag(_profile)

for _agency in agency_profiles():
    globals()[discover_dag_id(_agency)] = build_discover_dag(_agency)
