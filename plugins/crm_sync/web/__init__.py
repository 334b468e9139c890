"""The operator's console: crm-sync's pages inside the Airflow UI (a FastAPI app the plugin mounts at /crm-sync)."""

from __future__ import annotations

from typing import Any


class LazyConsole:
    """The console's ASGI app, built on its first request. Airflow imports plugins in every
    component (scheduler, workers, task processes), and the app pulls in Airflow's api-server
    security and the pipeline: only the api-server, which serves it, pays for that."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            from crm_sync.web.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


console = LazyConsole()
