"""OAuth 2.0 (GHL, and apps using client credentials): access tokens refreshed lazily,
rotated refresh tokens never lost.

GHL rotates the refresh token on every use: the old one dies the moment the new one is
issued. So the new refresh token is written to the token store *before* the new access
token is used for anything; a crash after that point loses nothing. The token is
refreshed when it is about to expire, and once more if a call still answers 401.

With a shared store (``token_store.WarehouseTokenStore``) the refresh runs under a lock every
process shares, and the access token is kept for every task until shortly before it expires:
one refresh per expiry, however many workers need a token at once. A save that fails after
GHL rotated the token is retried; if it keeps failing, ``on_unsaved`` alerts (the new token is
still used, and saved again at the next refresh) instead of losing the install quietly. A store
that cannot keep a token safely (no ``[core] fernet_key``) says so before the token endpoint is
called: a refresh token rotated then would be lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from contextlib import nullcontext
from dataclasses import dataclass

import httpx

from crm_sync.hooks.token_store import SharedTokenStore, TokenStore
from crm_sync.http import ApiClient, ApiError
from crm_sync.masking import mask_tokens

EXPIRY_MARGIN_S = 60.0
TOKEN_ATTEMPTS = 5
SAVE_ATTEMPTS = 4
SAVE_BACKOFF_S = 0.5
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str
    token_url: str
    user_type: str | None = "Location"  # GHL's token endpoint asks for it; other apps do not
    client_credentials: bool = False  # without a refresh token, ask for a token with the client's own grant

    def __repr__(self) -> str:
        return f"OAuthClient(client_id={self.client_id!r}, client_secret=***, token_url={self.token_url!r})"


class TokenRefreshError(RuntimeError):
    """GHL refused the refresh token; a new authorisation (install) is needed."""


class RotatingOAuth(httpx.Auth):
    """httpx auth that holds the access token and refreshes it through the token store."""

    def __init__(self, client: OAuthClient, store: TokenStore, initial_refresh_token: str | None,
                 on_unsaved: Callable[[], None] | None = None):
        self.client, self.store = client, store
        self.initial_refresh_token = initial_refresh_token
        self.on_unsaved = on_unsaved
        self.access_token: str | None = None
        self.expires_at = 0.0  # epoch seconds: processes compare it with each other's clocks
        self.refreshes = 0
        self.unsaved_refresh_token: str | None = None  # rotated, but every save failed
        self._lock = threading.Lock()
        self._token_api = ApiClient(client.token_url, per_second=1.0, burst=TOKEN_ATTEMPTS,
                                    max_attempts=TOKEN_ATTEMPTS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"

    def _refresh(self, stale: str | None) -> None:
        with self._lock:
            if self.access_token != stale:  # another thread refreshed meanwhile
                return
            ready = getattr(self.store, "ready", None)
            if ready is not None:
                ready()  # e.g. TokenKeyMissing: refused before GHL rotates a token we could not keep
            shared = self.store if isinstance(self.store, SharedTokenStore) else None
            with shared.locked() if shared else nullcontext():
                kept = shared.load_access() if shared else None
                if kept and kept[0] != stale and time.time() < kept[1] - EXPIRY_MARGIN_S:
                    mask_tokens({"access_token": kept[0]})  # this process never saw it come in
                    self.access_token, self.expires_at = kept  # another process refreshed meanwhile
                    return
                self._call_token_endpoint()
                if shared:
                    try:
                        shared.save_access(self.access_token, self.expires_at)
                    except Exception as exc:  # noqa: BLE001 - others refresh once more; this task goes on
                        log.warning("keeping the new access token for other tasks failed: %s", type(exc).__name__)

    def _call_token_endpoint(self) -> None:
        form = self._grant()
        requested_at = time.time()
        try:  # retried like any call while the server rate-limits (Retry-After) or is briefly down
            body = self._token_api.request("POST", self.client.token_url, data=form, retry=True).json()
        except ApiError as exc:  # the status only: the server's message could quote what we sent
            if not (self.client.client_credentials and form["grant_type"] == "refresh_token" and not exc.retriable):
                raise TokenRefreshError(f"token refresh refused with HTTP {exc.status or 'no response'}") from None
            # A refused refresh token: the client's own credentials still get a fresh pair.
            form = {**form, "grant_type": "client_credentials"}
            form.pop("refresh_token")
            body = self._token_api.request("POST", self.client.token_url, data=form, retry=True).json()
        mask_tokens(body)  # before anything could log them
        if body.get("refresh_token"):
            self._save_refresh_token(body["refresh_token"])  # before anything uses the new access token
        self.access_token = body["access_token"]
        self.expires_at = requested_at + float(body.get("expires_in", 3600))
        self.refreshes += 1

    def _save_refresh_token(self, refresh_token: str) -> None:
        """Save the rotated token, retrying; when every attempt fails, alert and keep it in memory."""
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                self.store.save(refresh_token)
                self.unsaved_refresh_token = None
                return
            except Exception as exc:  # noqa: BLE001 - any storage failure; the type only, never the token
                log.warning("saving the rotated refresh token failed (attempt %d of %d): %s",
                            attempt, SAVE_ATTEMPTS, type(exc).__name__)
                if attempt < SAVE_ATTEMPTS:
                    time.sleep(SAVE_BACKOFF_S * 2 ** (attempt - 1))
        self.unsaved_refresh_token = refresh_token
        log.error("the rotated refresh token could not be saved; it is used from memory and the install is at "
                  "risk until a later save succeeds")
        if self.on_unsaved:
            self.on_unsaved()

    def _grant(self) -> dict[str, str]:
        form = {"client_id": self.client.client_id, "client_secret": self.client.client_secret}
        if self.client.user_type:
            form["user_type"] = self.client.user_type
        refresh_token = self.unsaved_refresh_token or self.store.load() or self.initial_refresh_token
        if refresh_token:
            return {**form, "grant_type": "refresh_token", "refresh_token": refresh_token}
        if self.client.client_credentials:
            return {**form, "grant_type": "client_credentials"}
        raise TokenRefreshError("no refresh token: install the app again to get one")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.access_token is None or time.time() >= self.expires_at - EXPIRY_MARGIN_S:
            self._refresh(self.access_token)
        request.headers["Authorization"] = f"Bearer {self.access_token}"
        response = yield request
        if response.status_code == 401:  # revoked or expired early: refresh once and resend
            self._refresh(request.headers["Authorization"].removeprefix("Bearer "))
            request.headers["Authorization"] = f"Bearer {self.access_token}"
            yield request


def unsaved_alert(conn_id: str) -> Callable[[], None]:
    """The alert sent when a rotated refresh token could not be saved (see crm_sync.alerts)."""

    def alert() -> None:
        from crm_sync import alerts

        alerts.refresh_token_not_saved(conn_id)

    return alert


GHLOAuth = RotatingOAuth  # GHL's refresh-token flow is the general one with user_type=Location
