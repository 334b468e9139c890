"""crm-sync: every invalid profile shows as this file's DAG import error in the Airflow UI.

The valid profiles' DAGs come from crm_sync_profiles.py and keep running; this file
defines no DAG and fails to import, naming each bad file, key and expectation, while
any profile is invalid.
"""

from crm_sync.profile import ProfileError, usable_profiles

_errors = usable_profiles()[1]
if _errors:
    raise ProfileError("invalid sync profile(s), their DAGs are not loaded:\n" + "\n".join(_errors))
