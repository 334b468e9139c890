"""Who may see the console: the Airflow auth manager's user, per router, never app-wide.

Airflow does not guard a plugin's FastAPI app by itself. Each console router declares one of
these dependencies, which are Airflow's own (`airflow.api_fastapi.core_api.security`): the
user comes from the JWT in the Authorization header or the UI's `_token` cookie, and an
anonymous request is refused with 401 (403 for a forged or foreign token). Pages of one
profile are scoped by its DAG, as Airflow scopes its own DAG pages. Routers that must stay
open (the signed webhook receiver) simply declare none.
"""

from __future__ import annotations

from fastapi import Depends

from airflow.api_fastapi.core_api.security import requires_access_dag, requires_authenticated

LOGGED_IN = [Depends(requires_authenticated())]
READ_DAG = [Depends(requires_access_dag("GET"))]
EDIT_DAG = [Depends(requires_access_dag("PUT"))]
