"""OAuth 2.0 (GHL, and apps using client credentials): access tokens refreshed lazily,
rotated refresh tokens never lost.

GHL rotates the refresh token on every use: the old one dies the moment the new one is
issued. So the new refresh token is written to the token store *before* the new access
token is used for anything; a crash after that point loses nothing. The token is
refreshed when it is about to expire, and once more if a call still answers 401.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

import httpx

from crm_sync.http import ApiClient, ApiError
from crm_sync.masking import mask_tokens

EXPIRY_MARGIN_S = 60.0
TOKEN_ATTEMPTS = 5


class TokenStore(Protocol):
    """Where the newest refresh token of a connection lives between runs."""

    def load(self) -> str | None: ...

    def save(self, refresh_token: str) -> None: ...


class AirflowVariableTokenStore:
    """Keeps the refresh token in an Airflow Variable (encrypted at rest with Fernet; its key
    contains "token", so Airflow masks the value in every log)."""

    def __init__(self, conn_id: str, prefix: str = "crm_sync_ghl_refresh_token"):
        self.key = f"{prefix}__{conn_id}"

    def load(self) -> str | None:
        from airflow.sdk import Variable

        return Variable.get(self.key, default=None)

    def save(self, refresh_token: str) -> None:
        from airflow.sdk import Variable

        Variable.set(self.key, refresh_token, description="OAuth refresh token, rotated by crm-sync")


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

    def __init__(self, client: OAuthClient, store: TokenStore, initial_refresh_token: str | None):
        self.client, self.store = client, store
        self.initial_refresh_token = initial_refresh_token
        self.access_token: str | None = None
        self.expires_at = 0.0
        self.refreshes = 0
        self._lock = threading.Lock()
        self._token_api = ApiClient(client.token_url, per_second=1.0, burst=TOKEN_ATTEMPTS,
                                    max_attempts=TOKEN_ATTEMPTS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"

    def _refresh(self, stale: str | None) -> None:
        with self._lock:
            if self.access_token != stale:  # another thread refreshed meanwhile
                return
            form = self._grant()
            requested_at = time.monotonic()
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
                self.store.save(body["refresh_token"])  # before anything uses the new access token
            self.access_token = body["access_token"]
            self.expires_at = requested_at + float(body.get("expires_in", 3600)) - EXPIRY_MARGIN_S
            self.refreshes += 1

    def _grant(self) -> dict[str, str]:
        form = {"client_id": self.client.client_id, "client_secret": self.client.client_secret}
        if self.client.user_type:
            form["user_type"] = self.client.user_type
        refresh_token = self.store.load() or self.initial_refresh_token
        if refresh_token:
            return {**form, "grant_type": "refresh_token", "refresh_token": refresh_token}
        if self.client.client_credentials:
            return {**form, "grant_type": "client_credentials"}
        raise TokenRefreshError("no refresh token: install the app again to get one")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.access_token is None or time.monotonic() >= self.expires_at:
            self._refresh(self.access_token)
        request.headers["Authorization"] = f"Bearer {self.access_token}"
        response = yield request
        if response.status_code == 401:  # revoked or expired early: refresh once and resend
            self._refresh(request.headers["Authorization"].removeprefix("Bearer "))
            request.headers["Authorization"] = f"Bearer {self.access_token}"
            yield request


GHLOAuth = RotatingOAuth  # GHL's refresh-token flow is the general one with user_type=Location
