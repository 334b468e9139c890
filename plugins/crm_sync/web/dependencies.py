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
from fastapi import Depends, Query

from crm_sync.profile import Profile
from crm_sync.web.services import profile_of


def warehouse_connection() -> Iterator[sa.Connection]:
    from crm_sync.warehouse.db import engine

    with engine().begin() as conn:
        yield conn


WarehouseConnection = Annotated[sa.Connection, Depends(warehouse_connection, scope="function")]
ProfileOfDag = Annotated[Profile, Depends(profile_of)]  # 404 for a DAG that is not crm-sync's

# What a list's query string takes, as every list takes it: text without a NUL (PostgreSQL refuses it
# in a string) and pages within a database integer (a list brings a page below 1 or past its end in range);
# anything else is a 422 naming the parameter, not a 500.
Text = Annotated[str, Query(max_length=320, pattern=r"^[^\x00]*$")]
Page = Annotated[int, Query(ge=-(2**31), le=2**31 - 1)]
