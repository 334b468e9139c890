"""What our hooks share: the connection is looked up lazily, never at construction."""

from __future__ import annotations

from airflow.sdk import BaseHook, Connection


class HookBase(BaseHook):
    conn_name_attr = "conn_id"

    def __init__(self, conn_id: str | None = None):
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name

    def connection(self) -> Connection:
        return self.get_connection(self.conn_id)

    def extras(self, conn: Connection) -> dict:
        """Extra fields, whether saved by the UI form (``extra__<type>__<name>``) or written plainly."""
        prefix = f"extra__{self.conn_type}__"
        return {key.removeprefix(prefix): value for key, value in conn.extra_dejson.items() if value not in ("", None)}

    @staticmethod
    def base_url(conn: Connection, default: str) -> str:
        """A host may carry its scheme and port ("http://127.0.0.1:8080") or be a bare name."""
        host = (conn.host or "").rstrip("/")
        if not host:
            return default
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        return f"{host}:{conn.port}" if conn.port and host.count(":") < 2 else host
