"""Who may see and change what in the console: the Airflow auth manager's user, per router, never app-wide.

Airflow does not guard a plugin's FastAPI app by itself. Each console router declares one of
these dependencies, which are Airflow's own (`airflow.api_fastapi.core_api.security`): the
user comes from the JWT in the Authorization header or the UI's `_token` cookie, and an
anonymous request is refused with 401 (403 for a forged or foreign token). Pages of one
profile are scoped by its DAG, as Airflow scopes its own DAG pages; pages that show records
(payloads, before/after values, quarantine rows, review candidates) also need the DAG's runs
(READ_RUNS), and raw payloads its task logs (READ_TASK_LOGS), as Airflow's dagRun and log
routes do. Routers that must stay open (the signed webhook receiver) simply declare none.

Changes (SAME_ORIGIN_FORM) also refuse cross-site requests. Airflow's UI sets the `_token`
cookie from JavaScript, without SameSite, so a browser would send it with a form another site
posts. A change is taken only when the browser says it came from the console's own origin
(`Sec-Fetch-Site`, `Origin`) and, when the cookie is its credential, carries this user's CSRF
token: an HMAC of the user's id and an issue time under `[api] secret_key` (which every
api-server worker shares), rendered into each form by `csrf_token`. Nothing is kept per session.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Form, HTTPException, Request

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_authenticated

LOGGED_IN = [Depends(requires_authenticated())]
READ_DAG = [Depends(requires_access_dag("GET"))]
READ_RUNS = [*READ_DAG, Depends(requires_access_dag("GET", DagAccessEntity.RUN))]
READ_TASK_LOGS = [*READ_RUNS, Depends(requires_access_dag("GET", DagAccessEntity.TASK_LOGS))]
EDIT_DAG = [Depends(requires_access_dag("PUT"))]


def may_read_task_logs(dag_id: str, user: GetUserDep) -> bool:
    """Whether a page readable with the DAG alone (its runs list) may show what a task log holds,
    such as a failed task's error (it can quote a server's answer about a record). A dependency:
    ``ReadsTaskLogs``."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    manager = get_auth_manager()
    return all(manager.is_authorized_dag(method="GET", access_entity=entity, details=DagDetails(id=dag_id), user=user)
               for entity in (DagAccessEntity.RUN, DagAccessEntity.TASK_LOGS))


ReadsTaskLogs = Annotated[bool, Depends(may_read_task_logs)]

CSRF_FIELD = "csrf_token"
CSRF_LIFETIME = 12 * 3600  # seconds a rendered form stays usable
_PURPOSE = b"crm-sync console form\n"


def signing_key() -> bytes:
    """`[api] secret_key`, which every api-server worker shares (Airflow signs its own file tokens with it)."""
    from airflow.api_fastapi.auth.tokens import get_signing_key

    return get_signing_key("api", "secret_key").encode()


def _identity(user: BaseUser) -> str:
    return f"{user.get_id()}\n{user.get_name()}"


def _mac(user: BaseUser, issued: int) -> str:
    return hmac.new(signing_key(), _PURPOSE + f"{_identity(user)}\n{issued}".encode(), hashlib.sha256).hexdigest()


def csrf_token(user: BaseUser, now: float | None = None) -> str:
    """The token a form of ``user`` carries: ``<issued at>.<hmac>``."""
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_mac(user, issued)}"


def csrf_token_valid(user: BaseUser, token: str, now: float | None = None) -> bool:
    issued, _, mac = token.partition(".")
    if not issued.isdigit() or not mac:
        return False
    age = (time.time() if now is None else now) - int(issued)
    return -60 <= age <= CSRF_LIFETIME and hmac.compare_digest(mac.encode(), _mac(user, int(issued)).encode())  # bytes: any text is a 403, never a 500


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origins(request: Request) -> set[str]:
    """The console's origins: the request's own (scheme and Host as the api-server got them), and
    the public one Airflow is configured with (`[api] base_url`, behind a proxy)."""
    from airflow.configuration import conf

    origins = {_origin(str(request.base_url))}
    if base_url := conf.get("api", "base_url", fallback=""):
        origins.add(_origin(base_url))
    return origins


def refuse_cross_site(request: Request) -> None:
    """403 for a request another site's page made the browser send (see the module's docstring)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPException(403, f"refused: a change to crm-sync must come from the console's own pages "
                                 f"(the browser says this request came from a {site} page)")
    origin = request.headers.get("origin")
    if origin is not None and _origin(origin) not in own_origins(request):
        raise HTTPException(403, f"refused: a change to crm-sync must come from the console's own pages, "
                                 f"not from {origin[:100]!r} (Origin)")


def require_csrf_token(request: Request, user: GetUserDep,
                       token: Annotated[str, Form(alias=CSRF_FIELD)] = "") -> None:
    """403 unless the form carries this user's CSRF token. A request whose credential is an
    Authorization header (a script) needs none: a browser never adds that header to a cross-site form."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    if not token:
        raise HTTPException(403, f"refused: the form carries no {CSRF_FIELD} (reload the console's page and try again)")
    if not csrf_token_valid(user, token):
        raise HTTPException(403, f"refused: the form's {CSRF_FIELD} is not this user's or has expired "
                                 "(reload the console's page and try again)")


SAME_ORIGIN_FORM = [Depends(refuse_cross_site), Depends(require_csrf_token)]
