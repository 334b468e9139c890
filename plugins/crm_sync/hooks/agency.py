"""A GHL agency (company-level) install: one connection for every sub-account (location) it is installed on.

An agency connection is a ``ghl`` connection whose extra has ``company_id``, the OAuth app's
``client_id`` and ``client_secret`` and the agency's ``refresh_token`` (user_type Company), plus
``app_id`` (default: the client id's part before the first '-', as GHL's client ids are
``<appId>-<suffix>``). The agency token is a ``RotatingOAuth`` like a location install's: its refresh
token rotates on every use and is kept in the warehouse token store under its own key
(``crm_sync_ghl_agency_token__<conn_id>``, never a location install's ``crm_sync_ghl_refresh_token__``).

Per apps/oauth.json the agency token lists where the app is installed (``GET /oauth/installedLocations``)
and trades itself for a location's token (``POST /oauth/locationToken``). A location token is minted on
demand, kept in the warehouse token store (key ``ghl_location__<conn_id>__<location_id>``, encrypted)
and shared by every task, process and worker until shortly before it expires: one mint per location
per token lifetime. The mint runs under the store's lock, so workers asking at once mint once.
Nothing here calls GHL when a DAG file is parsed: only when a task asks.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import httpx

from crm_sync.errors import NoRetryError, SideUnavailable
from crm_sync.hooks.base import HookBase
from crm_sync.hooks.oauth import EXPIRY_MARGIN_S, OAuthClient, RotatingOAuth, unsaved_alert
from crm_sync.hooks.token_store import (
    AirflowVariableTokenStore,
    SharedTokenStore,
    TokenStore,
    WarehouseTokenStore,
    shared_store,
)
from crm_sync.http import ApiClient, ApiError
from crm_sync.masking import mask_tokens
from crm_sync.paging import OffsetPaginator, PageGuard, PageRequest, pages

OAUTH_API_VERSION = "2021-07-28"  # the Version apps/oauth.json requires of both agency operations
DEFAULT_BASE_URL = "https://services.leadconnectorhq.com"
PAGE_LIMIT = 100  # installed locations per page
log = logging.getLogger(__name__)


class LocationNotInstalled(SideUnavailable):
    """GHL no longer gives a token for this location: the app was uninstalled there (or the location left
    the agency), as GHL's own list of installed locations confirmed. A retry cannot fix it: the task fails
    at once; discovery marks the location uninstalled."""

    def __init__(self, conn_id: str, location_id: str, status: int | None):
        super().__init__(f"GHL location {location_id} refused a location token through agency connection "
                         f"'{conn_id}' (HTTP {status}): the app was uninstalled from this location, or the location "
                         "left the agency. Reinstall the app there, or drop the location from the profile")
        self.conn_id, self.location_id, self.status = conn_id, location_id, status

    def __reduce__(self):  # pickled by Airflow and Celery: rebuilt from its own arguments, not the message
        return type(self), (self.conn_id, self.location_id, self.status)


class AgencyConfigError(SideUnavailable):
    """The agency connection does not match GHL (a wrong extra.company_id or app_id), or GHL answered a
    token for another location: a retry cannot fix it. The message names ids and HTTP statuses only,
    never GHL's own text nor a token."""


@dataclass(frozen=True)
class InstalledLocation:
    """A location of the agency where the app is installed (InstalledLocationSchema)."""

    id: str
    name: str
    address: str
    installed: bool
    installed_at: str | None = None


def _installed_location(row: dict[str, Any], installed: bool | None) -> InstalledLocation:
    return InstalledLocation(str(row["_id"]), str(row.get("name") or ""), str(row.get("address") or ""),
                             bool(row.get("isInstalled", installed is not False)), row.get("installedAt"))


def is_agency(extra: dict[str, Any]) -> bool:
    """An agency connection names its company; a location connection its location."""
    return bool(extra.get("company_id"))


def location_token_key(conn_id: str, location_id: str) -> str:
    """Where a location's token is kept in the warehouse token store."""
    return f"ghl_location__{conn_id}__{location_id}"


AGENCY_TOKEN_PREFIX = "crm_sync_ghl_agency_token"  # not a location install's prefix: switching a connection
# to agency never reuses that install's token row


def agency_token_store(conn_id: str) -> AirflowVariableTokenStore:
    """Where the agency's (Company) refresh token is kept: its own key, ``crm_sync_ghl_agency_token__<conn>``."""
    return AirflowVariableTokenStore(conn_id, prefix=AGENCY_TOKEN_PREFIX)


class _CountedOffset(OffsetPaginator):
    """``skip`` moves by the records read. With ``count`` (every match) in the answer the list ends once
    it is read, so a server answering fewer than ``limit`` per page does not end it early; without it
    (``count`` is optional in the spec) the list goes on while a page is full and ends on a short one."""

    def next(self, request: PageRequest, body: Any, records: list[Any]) -> PageRequest | None:
        read = (request.params or {})[self.param] + len(records)
        count = body.get("count") if isinstance(body, dict) else None
        if isinstance(count, int | float) and not isinstance(count, bool):
            more = read < count
        else:
            more = len(records) >= self.size
        return request.with_param(self.param, read) if more else None


class LocationTokenAuth(httpx.Auth):
    """httpx auth with a location's token minted from the agency token, shared through the warehouse.

    Minted when none is kept or the kept one is within EXPIRY_MARGIN_S of expiry, and once more if a
    call still answers 401 (revoked early); a refused mint raises LocationNotInstalled (or
    AgencyConfigError), and is remembered: every later call, on any thread, raises it again without
    asking GHL (one refused mint per auth, not one per call)."""

    def __init__(self, agency: AgencyHook, location_id: str, store: SharedTokenStore):
        self.agency, self.location_id, self.store = agency, location_id, store
        self.access_token: str | None = None
        self.expires_at = 0.0  # epoch seconds, compared across processes
        self.mints = 0
        self.refused: NoRetryError | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocationTokenAuth({self.location_id!r}, ***)"

    def close(self) -> None:
        """The agency hook's clients (closed with the GHL client that uses this auth)."""
        self.agency.close()

    def _raise_refused(self) -> None:
        if self.refused is not None:
            raise copy.copy(self.refused)  # a copy: threads raising at once never share one traceback

    def _renew(self, stale: str | None) -> None:
        with self._lock:
            self._raise_refused()
            if self.access_token != stale:  # another thread renewed meanwhile
                return
            ready = getattr(self.store, "ready", None)
            if ready is not None:
                ready()  # no Fernet key: refused before a token is minted that could not be kept
            with self.store.locked() if isinstance(self.store, SharedTokenStore) else nullcontext():
                kept = self.store.load_access()
                if kept and kept[0] != stale and time.time() < kept[1] - EXPIRY_MARGIN_S:
                    mask_tokens({"access_token": kept[0]})
                    self.access_token, self.expires_at = kept  # another process minted meanwhile
                    return
                requested_at = time.time()
                try:
                    body = self.agency.mint(self.location_id)
                except NoRetryError as refused:
                    self.refused = refused
                    raise
                self.access_token = body["access_token"]
                self.expires_at = requested_at + float(body.get("expires_in", 3600))
                self.mints += 1
                try:
                    self.store.save_access(self.access_token, self.expires_at)
                except Exception as exc:  # noqa: BLE001 - others mint once more; this task goes on
                    log.warning("keeping location %s's token for other tasks failed: %s", self.location_id,
                                type(exc).__name__)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self._raise_refused()
        if self.access_token is None or time.time() >= self.expires_at - EXPIRY_MARGIN_S:
            self._renew(self.access_token)
        request.headers["Authorization"] = f"Bearer {self.access_token}"
        response = yield request
        if response.status_code == 401:  # revoked (uninstalled?) or expired early: mint once and resend
            self._renew(request.headers["Authorization"].removeprefix("Bearer "))
            request.headers["Authorization"] = f"Bearer {self.access_token}"
            yield request


class AgencyHook(HookBase):
    """The agency connection: its installed locations, and each location's token (see the module doc)."""

    conn_type = "ghl"
    default_conn_name = "ghl_agency"
    hook_name = "GoHighLevel agency"

    def __init__(self, conn_id: str | None = None, token_store: TokenStore | None = None,
                 warehouse_url: str | None = None):
        super().__init__(conn_id)
        self.token_store = token_store  # of the agency's refresh token; default the warehouse's
        self.warehouse_url = warehouse_url  # default: the warehouse connection (crm_sync.warehouse.db)
        self._settings: tuple[str, str, str] | None = None
        self._api: ApiClient | None = None
        self._auth: RotatingOAuth | None = None
        self._lock = threading.Lock()

    def _setup(self) -> tuple[str, str, str]:
        """(base url, company id, app id), and the agency's token auth; the connection is read once."""
        with self._lock:
            if self._settings is None:
                conn = self.connection()
                extra = self.extras(conn)
                if not is_agency(extra):
                    raise ValueError(f"connection '{self.conn_id}' is not an agency connection: it needs "
                                     "extra.company_id")
                missing = [name for name in ("client_id", "client_secret") if not extra.get(name)]
                if missing:
                    raise ValueError(f"agency connection '{self.conn_id}' needs extra.{' and extra.'.join(missing)}")
                base_url = self.base_url(conn, DEFAULT_BASE_URL)
                client = OAuthClient(extra["client_id"], extra["client_secret"], f"{base_url}/oauth/token",
                                     user_type="Company")
                store = self.token_store or shared_store(agency_token_store(self.conn_id))
                self._auth = RotatingOAuth(client, store, extra.get("refresh_token"),
                                           on_unsaved=unsaved_alert(self.conn_id))
                app_id = extra.get("app_id") or extra["client_id"].split("-")[0]
                self._settings = (base_url, str(extra["company_id"]), str(app_id))
            return self._settings

    @property
    def api_url(self) -> str:
        return self._setup()[0]

    @property
    def company_id(self) -> str:
        return self._setup()[1]

    @property
    def app_id(self) -> str:
        return self._setup()[2]

    @property
    def agency_auth(self) -> RotatingOAuth:
        """The agency token (user_type Company), refreshed and rotated through the token store."""
        self._setup()
        assert self._auth is not None
        return self._auth

    def api(self) -> ApiClient:
        """The client of the agency operations, with the agency token."""
        base_url = self._setup()[0]
        with self._lock:
            if self._api is None:
                self._api = ApiClient(base_url, auth=self._auth, headers={"Version": OAUTH_API_VERSION,
                                                                          "Accept": "application/json"})
            return self._api

    def get_conn(self) -> ApiClient:
        return self.api()

    def close(self) -> None:
        """Both httpx clients (the agency operations' and the agency token's); a later call opens new ones."""
        with self._lock:
            api, auth = self._api, self._auth
            self._api, self._auth, self._settings = None, None, None
        if api is not None:
            api.close()
        if auth is not None:
            auth._token_api.close()

    def _listing(self, installed: bool | None, **filters: str) -> dict[str, Any]:
        _, company_id, app_id = self._setup()
        params: dict[str, Any] = {"companyId": company_id, "appId": app_id, "limit": PAGE_LIMIT, **filters}
        if installed is not None:
            params["isInstalled"] = "true" if installed else "false"
        return params

    def _fetch_page(self, call: PageRequest) -> tuple[Any, list[Any]]:
        body = self.api().request("GET", call.path, params=call.params, retry=True).json()
        listed = body.get("locations") if isinstance(body, dict) else None
        if not isinstance(listed, list):
            raise ApiError(None, "GET", call.path, "the answer holds no list under 'locations'")
        return body, listed

    def installed_locations(self, installed: bool | None = True, query: str | None = None
                            ) -> Iterator[InstalledLocation]:
        """Every location of the agency where the app is installed (``installed=None``: every location,
        installed or not), ``PAGE_LIMIT`` per call, the next page asked only when the caller reads on."""
        params = self._listing(installed, **({"query": query} if query else {}))
        guard = PageGuard("GHL installed locations", f"connection {self.conn_id}", lambda row: row.get("_id"))
        for rows in pages(_CountedOffset("skip", PAGE_LIMIT), PageRequest("/oauth/installedLocations", params),
                          self._fetch_page, guard):
            for row in rows:
                yield _installed_location(row, installed)

    def installed_location(self, location_id: str) -> InstalledLocation | None:
        """The location as GHL lists it for this company and app, installed or not (one call, filtered by
        ``locationId``); None when GHL does not list it at all."""
        _, rows = self._fetch_page(PageRequest("/oauth/installedLocations",
                                               self._listing(None, locationId=location_id)))
        return next((_installed_location(row, None) for row in rows if str(row.get("_id")) == location_id), None)

    def mint(self, location_id: str) -> dict[str, Any]:
        """A new token for the location (GetLocationAccessTokenSuccessfulResponseDto). A refusal (400, 403,
        404) is LocationNotInstalled only once GHL's installed locations confirm it (see ``refusal``).
        Prefer ``location_auth``: it mints only when needed."""
        _, company_id, _ = self._setup()
        try:
            response = self.api().request("POST", "/oauth/locationToken", retry=True,
                                          data={"companyId": company_id, "locationId": location_id})
        except ApiError as exc:
            if exc.status in (400, 403, 404):
                raise self.refusal(location_id, exc.status) from None
            raise
        body = response.json()
        mask_tokens(body)  # before anything could log it
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ApiError(response.status_code, "POST", "/oauth/locationToken", "the answer holds no access_token")
        answered = body.get("locationId")
        if answered is not None and str(answered) != location_id:
            raise AgencyConfigError(f"GHL answered a location token for location {answered} when agency connection "
                                    f"'{self.conn_id}' asked one for location {location_id}: it is not used")
        return body

    def refusal(self, location_id: str, status: int | None) -> NoRetryError:
        """Why GHL refused the location a token, asked of GHL's installed locations (one call): listed as not
        installed, or not listed at all, is LocationNotInstalled; listed as installed, or the listing
        refused too (a wrong company or app id), is an AgencyConfigError naming the extra's ids and statuses."""
        try:
            found = self.installed_location(location_id)
        except ApiError as exc:
            if exc.retriable:
                raise
            return AgencyConfigError(
                f"GHL refused a location token for location {location_id} (HTTP {status}) and the list of installed "
                f"locations (HTTP {exc.status}) through agency connection '{self.conn_id}': check its "
                f"extra.company_id ({self.company_id}) and extra.app_id ({self.app_id})")
        if found is None or not found.installed:
            return LocationNotInstalled(self.conn_id, location_id, status)
        return AgencyConfigError(
            f"GHL refused a location token for location {location_id} (HTTP {status}) through agency connection "
            f"'{self.conn_id}', though it lists the app as installed there: check the connection's "
            f"extra.company_id ({self.company_id})")

    def location_store(self, location_id: str) -> WarehouseTokenStore:
        return WarehouseTokenStore(location_token_key(self.conn_id, location_id), url=self.warehouse_url)

    def location_auth(self, location_id: str, store: SharedTokenStore | None = None) -> LocationTokenAuth:
        """httpx auth for one location's calls, its token shared through the warehouse token store."""
        return LocationTokenAuth(self, location_id, store or self.location_store(location_id))

    def test_connection(self) -> tuple[bool, str]:
        """One page of installed locations: the agency token and the company and app ids all work."""
        try:
            _, company_id, app_id = self._setup()
            body = self.api().request("GET", "/oauth/installedLocations", retry=False,
                                      params={"companyId": company_id, "appId": app_id, "limit": 1,
                                              "isInstalled": "true"}).json()
            return True, f"GoHighLevel agency {company_id}: the app is installed on {body.get('count', 0)} locations"
        except Exception as exc:  # noqa: BLE001 - the UI shows the message
            return False, str(exc)
        finally:
            self.close()
