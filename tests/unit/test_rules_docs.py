"""docs/rules.md is read by the code it describes: every ``yaml`` example passes the profile checks (a
block headed ``# profile: <name>`` added to that built-in profile), every one-line example of a trigger,
condition or action is a valid one, and each seed guide has its section quoting it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from crm_sync.paths import PROFILES_DIR
from crm_sync.profile import parse_profile
from crm_sync.profile_rules import Action, Condition, Rule, When

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```yaml\n(.*?)^```$", PAGE, flags=re.M | re.S)
HEADER = re.compile(r"^# profile: ([a-z_]+)\n")
# The integration guides (shared/seeds/README.md): each needs a section on the rules page.
GUIDES = {"000_d3a6a31c75f13895.txt": "Gymdesk", "001_2438e474881a2c6a.txt": "GymFlow",
          "002_a229f70118247b08.txt": "APPNAME", "003_b416057fc0ba3db9.txt": "MyGadgetRepairs",
          "004_ffac8ffba53a2b99.txt": "Gist"}
SEEDS = Path(os.environ.get("CRM_SYNC_SEEDS_DIR", "/work/shared/seeds"))


def merged(base: Any, block: Any) -> Any:
    """``block`` laid over ``base``: mappings key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(block, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in block.items()}}
    return block


def docs_profile(block: str, number: int):
    """The block added to its built-in profile, whose own rules and new_contact_tasks are dropped first,
    so the block's are the only ones, checked with the whole profile."""
    name = HEADER.match(block)[1]
    data = yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())
    data["rules"] = []
    data["entities"]["contact"].pop("new_contact_tasks", None)
    return parse_profile(yaml.safe_dump(merged(data, yaml.safe_load(block)), sort_keys=False),
                         f"docs/rules.md yaml block {number} on {name}.yaml")


def test_the_page_has_examples_and_each_names_its_profile():
    assert len(BLOCKS) >= 8
    assert [n for n, block in enumerate(BLOCKS) if not HEADER.match(block)] == []


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_every_yaml_example_passes_the_profile_checks(number):
    block = BLOCKS[number]
    profile = docs_profile(block, number)
    data = yaml.safe_load(block)
    rules = [Rule.model_validate(rule) for rule in data.get("rules", [])]
    assert [r.name for r in rules] == [r.name for r in profile.rules]
    assert profile.active_rules, "an example with no rule in it"


def test_the_built_in_rules_quoted_are_the_profiles_own():
    """A guide's example that says it is in the built-in profile shows that profile's rules as they are."""
    for block in BLOCKS:
        name = HEADER.match(block)[1]
        own = {rule.name: rule for rule in parse_profile((PROFILES_DIR / f"{name}.yaml").read_text(), name).rules}
        for rule in yaml.safe_load(block).get("rules", []):
            if rule["name"] in own:
                shown = Rule.model_validate(rule)
                assert shown.model_copy(update={"description": own[rule["name"]].description}) == own[rule["name"]], \
                    rule["name"]


def test_new_contact_tasks_read_as_the_rule_the_page_shows():
    [legacy] = [n for n, block in enumerate(BLOCKS) if "new_contact_tasks:" in block]
    [read_as] = [n for n, block in enumerate(BLOCKS) if "name: new_contact_task_1" in block]
    [from_tasks] = docs_profile(BLOCKS[legacy], legacy).active_rules
    [written] = docs_profile(BLOCKS[read_as], read_as).active_rules
    assert from_tasks.legacy_task == 0 and written.legacy_task is None
    assert (from_tasks.name, from_tasks.when, from_tasks.if_, from_tasks.then) == (
        written.name, written.when, written.if_, written.then)


INLINE = re.findall(r"`((?:when|if|then): \{.*?\})`", PAGE)


@pytest.mark.parametrize("example", INLINE)
def test_every_one_line_example_is_valid(example):
    key, value = next(iter(yaml.safe_load(example).items()))
    model = {"when": When, "if": Condition, "then": Action}[key]
    model.model_validate(value)


def test_every_trigger_test_and_action_has_a_one_line_example():
    shown = {(key, name) for example in INLINE for key, value in yaml.safe_load(example).items() for name in value}
    triggers = {"new_contact", "field_changed", "tag_added", "tag_removed", "appointment_status", "task_completed"}
    tests = {"equals", "in", "contains", "empty", "gte", "tag", "all", "any"}
    actions = {"set", "add_tag", "remove_tag", "create_task", "create_note"}
    expected = {("when", t) for t in triggers} | {("if", t) for t in tests} | {("then", a) for a in actions}
    assert expected <= shown, sorted(expected - shown)


def sections() -> dict[str, str]:
    """Each guide's section of the page: its text up to the next heading."""
    heading = r"^### [^\n]*\(guide (\d{3}_[0-9a-f]+\.txt)\)\n(.*?)(?=^##+ |\Z)"
    return {match[1]: match[2] for match in re.finditer(heading, PAGE, flags=re.M | re.S)}


def test_each_seed_guide_has_a_section_with_its_ask_and_a_rule():
    found = sections()
    assert set(found) == set(GUIDES)
    for guide, text in found.items():
        assert re.search(r"^> \S", text, flags=re.M), f"{guide}: no quote of the guide's ask"
        assert "```yaml\n# profile: " in text, f"{guide}: no rule"
    if SEEDS.is_dir():  # the guides themselves: every one has a section, and each quote is theirs verbatim
        assert {path.name for path in SEEDS.glob("*.txt")} == set(GUIDES)
        for guide, text in found.items():
            source = " ".join((SEEDS / guide).read_text(encoding="utf-8").split())
            assert GUIDES[guide] in source
            quote = "\n".join(line[2:] for line in text.splitlines() if line.startswith(">"))
            for paragraph in re.split(r"\n\s*\n", quote):
                assert " ".join(paragraph.split()) in source, (guide, paragraph)
