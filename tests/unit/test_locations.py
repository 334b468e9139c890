"""One profile naming several GHL locations becomes one profile (one DAG) per location."""

from __future__ import annotations

import pytest
from crm_sync.locations import staggered
from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import ProfileError, load_profiles, profile_by_name


def write_multi_location_profile(directory, locations: str, base: str = "gymdesk") -> None:
    text = (PROFILES_DIR / f"{base}.yaml").read_text()
    (directory / f"{base}.yaml").write_text(text + "\nlocations:\n" + locations)


def test_each_location_gets_its_own_dag_pool_connection_schedule_and_warehouse_key(tmp_path):
    write_multi_location_profile(tmp_path, """\
  - {key: north, conn_id: ghl_north, app_conn_id: gymdesk_north}
  - {key: south, conn_id: ghl_south}
  - {key: east, conn_id: ghl_east, schedule: "30 5 * * *", pool: shared_east}
""")
    north, south, east = load_profiles(tmp_path)
    assert [p.name for p in (north, south, east)] == ["gymdesk__north", "gymdesk__south", "gymdesk__east"]
    assert [p.dag_id for p in (north, south, east)] == ["ghl_gymdesk_north", "ghl_gymdesk_south", "ghl_gymdesk_east"]
    assert [p.ghl.conn_id for p in (north, south, east)] == ["ghl_north", "ghl_south", "ghl_east"]
    assert [p.ghl.pool_name for p in (north, south, east)] == ["crm_sync_ghl_north", "crm_sync_ghl_south",
                                                               "shared_east"]
    assert [p.app.conn_id for p in (north, south)] == ["gymdesk_north", "gymdesk_default"]
    assert [p.schedule for p in (north, south, east)] == ["0 0 * * *", "20 0 * * *", "30 5 * * *"]
    # a task finds its location's profile by the name the DAG carries
    assert profile_by_name("gymdesk__south", tmp_path) == south
    with pytest.raises(ProfileError, match="no location 'west'"):
        profile_by_name("gymdesk__west", tmp_path)


def test_a_duplicate_location_key_is_an_error_naming_the_key(tmp_path):
    write_multi_location_profile(tmp_path, "  - {key: north, conn_id: a}\n  - {key: north, conn_id: b}\n")
    with pytest.raises(ProfileError, match=r"key 'locations': duplicate location key\(s\) \['north'\]"):
        load_profiles(tmp_path)


def test_schedules_are_staggered_across_the_hour_unless_they_cannot_be():
    assert [staggered("0 2 * * *", i, 4) for i in range(4)] == ["0 2 * * *", "15 2 * * *", "30 2 * * *",
                                                               "45 2 * * *"]
    assert len({staggered("0 0 * * *", i, 50) for i in range(50)}) == 50
    assert [staggered("*/15 * * * *", i, 3) for i in range(3)] == ["*/15 * * * *", "5-59/15 * * * *",
                                                                   "10-59/15 * * * *"]
    assert staggered("@daily", 3, 5) == "@daily" and staggered("5,35 * * * *", 1, 2) == "5,35 * * * *"
