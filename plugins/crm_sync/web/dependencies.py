"""What the console's routes are given, as Airflow's api_fastapi gives its routes a session
(`SessionDep` in `common/db/common.py`): the request's warehouse connection, and the profile of
the DAG in the path.

The connection holds one transaction per request, committed when the route returns and rolled
back when it raises, before the answer leaves (scope "function"): a browser that follows the
redirect after a review decision reads the decision back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends

from crm_sync.profile import Profile
from crm_sync.web.services import profile_of


def warehouse_connection() -> Iterator[sa.Connection]:
    from crm_sync.warehouse.db import engine

    with engine().begin() as conn:
        yield conn


WarehouseConnection = Annotated[sa.Connection, Depends(warehouse_connection, scope="function")]
ProfileOfDag = Annotated[Profile, Depends(profile_of)]  # 404 for a DAG that is not crm-sync's
