"""crm-sync Airflow DAGs: one DAG per valid sync profile in include/profiles/*.yaml, and a fast lane
beside it for each profile woken by webhooks (``Profile.fast_dag_id``).

Parsing this file reads the profile YAML and nothing else: no connection, no
warehouse, no network. An invalid profile is left out here (the others keep running)
and reported by crm_sync_profile_errors.py.
"""

from crm_sync.dag_factory import build_dag
from crm_sync.fast_dag import build_fast_dag
from crm_sync.profile import usable_profiles

for _profile in usable_profiles()[0]:
    globals()[_profile.dag_id] = build_dag(_profile)
    if _profile.fast_dag_id:
        globals()[_profile.fast_dag_id] = build_fast_dag(_profile)
