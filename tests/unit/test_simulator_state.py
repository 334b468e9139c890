"""A simulator run from the command line keeps its records across a restart (`make ui` after `make demo`)."""

from __future__ import annotations

import json

from harness.simulators.__main__ import build_app, parse_args, save_state


def test_records_saved_on_stop_are_loaded_instead_of_the_seed(tmp_path):
    seed, state = tmp_path / "seed.json", tmp_path / "state.json"
    seed.write_text(json.dumps({"members": [{"id": "mem_1", "first_name": "Ana"}]}))
    args = parse_args(["gymdesk", "--seed", str(seed), "--state-file", str(state)])
    first = build_app(args)
    first.state.records.table("members")["mem_2"] = {"id": "mem_2", "first_name": "Bo"}  # written meanwhile
    save_state(first.state.records, state)

    again = build_app(args)
    assert set(again.state.records.table("members")) == {"mem_1", "mem_2"}
