"""crm-sync Airflow DAGs: one DAG per sync profile in include/profiles/*.yaml.

Parsing this file reads the profile YAML and nothing else: no connection, no
warehouse, no network.
"""

from crm_sync.dag_factory import build_dag
from crm_sync.profile import load_profiles

for _profile in load_profiles():
    globals()[_profile.dag_id] = build_dag(_profile)
