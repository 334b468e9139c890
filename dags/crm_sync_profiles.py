"""crm-sync Airflow DAGs: one DAG per valid sync profile in include/profiles/*.yaml.

Parsing this file reads the profile YAML and nothing else: no connection, no
warehouse, no network. An invalid profile is left out here (the others keep running)
and reported by crm_sync_profile_errors.py.
"""

from crm_sync.dag_factory import build_dag
from crm_sync.profile import usable_profiles

for _profile in usable_profiles()[0]:
    globals()[_profile.dag_id] = build_dag(_profile)
