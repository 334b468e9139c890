"""GHLHook reads its connection lazily and picks the auth the connection describes."""

from __future__ import annotations

import json

import pytest
from crm_sync.hooks.ghl import DEFAULT_BASE_URL, BearerToken, GHLHook
from crm_sync.hooks.oauth import GHLOAuth


def set_conn(monkeypatch, **conn) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GHL_UNDER_TEST", json.dumps({"conn_type": "ghl", **conn}))


def test_constructing_the_hook_looks_nothing_up(monkeypatch):
    """DAG files build hooks at parse time: the connection is read when the hook is used, not before."""
    looked_up = []
    real = GHLHook.get_connection.__func__
    monkeypatch.setattr(GHLHook, "get_connection",
                        classmethod(lambda cls, conn_id: looked_up.append(conn_id) or real(cls, conn_id)))
    monkeypatch.delenv("AIRFLOW_CONN_GHL_UNDER_TEST", raising=False)
    hook = GHLHook("ghl_under_test")  # no connection exists yet
    assert looked_up == []
    set_conn(monkeypatch, password="pit-set-after", extra={"location_id": "loc-after"})
    config = hook.config()  # the connection as it is when the hook is used
    assert looked_up == ["ghl_under_test"] and config.location_id == "loc-after"


def test_a_private_integration_token_becomes_bearer_auth_on_ghl_by_default(monkeypatch):
    set_conn(monkeypatch, password="pit-abcdef", extra={"location_id": "loc1"})
    config = GHLHook("ghl_under_test").config()
    assert isinstance(config.auth, BearerToken) and config.base_url == DEFAULT_BASE_URL
    assert "pit-abcdef" not in repr(config)


def test_oauth_fields_saved_by_the_ui_form_select_oauth(monkeypatch):
    set_conn(monkeypatch, host="http://127.0.0.1:8099", extra={
        "extra__ghl__location_id": "loc1", "extra__ghl__client_id": "client", "extra__ghl__client_secret": "s3cret!",
        "extra__ghl__refresh_token": "refresh-1"})
    config = GHLHook("ghl_under_test", token_store=object()).config()
    assert isinstance(config.auth, GHLOAuth)
    assert config.auth.client.token_url == "http://127.0.0.1:8099/oauth/token"
    assert "s3cret!" not in repr(config) + repr(config.auth.client)


def test_missing_fields_are_named(monkeypatch):
    set_conn(monkeypatch, password="pit-abcdef")
    with pytest.raises(ValueError, match="'ghl_under_test' needs extra.location_id"):
        GHLHook("ghl_under_test").config()
    set_conn(monkeypatch, extra={"location_id": "loc1", "client_id": "client"})
    with pytest.raises(ValueError, match="needs extra.client_secret"):
        GHLHook("ghl_under_test").config()


def test_the_connection_types_and_their_form_fields_are_registered_with_airflow():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.hooks["ghl"].hook_class_name == "crm_sync.hooks.ghl.GHLHook"
    assert manager.hooks["crm_sync_app"].hook_class_name == "crm_sync.hooks.app.AppHook"
    fields = manager.connection_form_widgets
    assert {"extra__ghl__location_id", "extra__ghl__client_id", "extra__ghl__client_secret",
            "extra__ghl__refresh_token"} <= set(fields)
    assert fields["extra__ghl__client_secret"].is_sensitive and fields["extra__ghl__refresh_token"].is_sensitive
    assert "login" in manager.field_behaviours["ghl"]["hidden_fields"]


def test_an_app_connection_without_a_host_uses_the_profile_base_url(monkeypatch):
    from crm_sync.hooks.app import AppHook
    from crm_sync.profile import profile_by_name

    api = profile_by_name("mygadgetrepairs").app
    monkeypatch.setenv(f"AIRFLOW_CONN_{api.conn_id.upper()}", json.dumps({"conn_type": "crm_sync_app",
                                                                          "password": "mgr-key"}))
    client = AppHook(api).get_conn()
    try:
        assert str(client.http.base_url) == "https://api.mygadgetrepairs.com/v1/"
        assert client.http.headers["Authorization"] == "mgr-key"  # the raw key, as MyGadgetRepairs documents
    finally:
        client.close()
    monkeypatch.setenv(f"AIRFLOW_CONN_{api.conn_id.upper()}", json.dumps({"conn_type": "crm_sync_app",
                                                                          "host": "http://127.0.0.1:9/v1",
                                                                          "password": "mgr-key"}))
    client = AppHook(api).get_conn()
    assert str(client.http.base_url) == "http://127.0.0.1:9/v1/"  # the connection's host wins
    client.close()
