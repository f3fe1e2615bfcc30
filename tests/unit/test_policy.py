"""Policy files: what loads, what fails, and how the failure reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.errors import PolicyError
from guard.policy import load_policy, packaged_policies_dir, parse_policy

SHIPPED = sorted(p for p in packaged_policies_dir().glob("*.yaml") if ".cases." not in p.name)


def test_at_least_three_policy_packs_are_shipped() -> None:
    assert {p.stem for p in SHIPPED} >= {"default", "healthcare", "payments"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_policy_loads_and_has_a_cases_file(path: Path) -> None:
    policy = load_policy(path)
    assert policy.name == path.stem
    assert len(policy.sha256) == 64
    assert path.with_name(f"{path.stem}.cases.yaml").exists()


def test_shipped_policy_loads_by_name() -> None:
    assert load_policy("default").source.endswith("default.yaml")


def test_sha256_changes_with_the_file_bytes(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("version: 1\nname: a\n")
    first = load_policy(a).sha256
    a.write_text("version: 1\nname: a\nmode: monitor\n")
    assert load_policy(a).sha256 != first


def test_unknown_mode_error_names_file_line_key_and_allowed_values() -> None:
    text = "version: 1\nname: p\nmode: enforcing\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("p.yaml:3: mode:")
    assert "'enforce' or 'monitor'" in problem


def test_unknown_key_error_lists_the_allowed_keys() -> None:
    text = "version: 1\nname: p\npii:\n  action: mask\n  colour: blue\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("p.yaml:5: pii.colour: unknown key")
    assert "entities" in problem and "min_score" in problem


def test_unknown_entity_error_names_the_entity_and_known_ones() -> None:
    text = "version: 1\nname: p\npii:\n  entities: [PERSON, SHOE_SIZE]\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    assert "p.yaml:4: pii.entities: unknown entity SHOE_SIZE" in info.value.problems[0]
    assert "EMAIL_ADDRESS" in info.value.problems[0]


def test_rule_errors_point_into_the_rules_list() -> None:
    text = (
        "version: 1\nname: p\noutput:\n  rules:\n"
        "    - id: ok\n      when: {keywords: [a]}\n      action: warn\n"
        "    - id: broken\n      when: {regex: '('}\n      action: explode\n"
    )
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    problems = info.value.problems
    assert any(p.startswith("p.yaml:9: output.rules[1].when.regex: invalid regular expression")
               for p in problems)
    assert any(p.startswith("p.yaml:10: output.rules[1].action:") and "'block'" in p
               for p in problems)


def test_rule_with_two_conditions_is_refused() -> None:
    text = ("version: 1\nname: p\noutput:\n  rules:\n"
            "    - id: r\n      when: {keywords: [a], max_chars: 10}\n      action: warn\n")
    with pytest.raises(PolicyError, match="exactly one condition"):
        parse_policy(text, source="p.yaml")


def test_unknown_moderation_category_and_provider_are_refused() -> None:
    text = ("version: 1\nname: p\nmoderation:\n  input:\n    provider: acme\n"
            "    thresholds: {default: 0.5, gore: 0.1}\n")
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    joined = "\n".join(info.value.problems)
    assert "unknown provider 'acme'; known: openai, local, none" in joined
    assert "unknown category gore" in joined


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("version: 1\nname: [unclosed\n", source="p.yaml")
    assert info.value.problems[0].startswith("p.yaml:")
    assert "not valid YAML" in info.value.problems[0]


def test_missing_file_lists_shipped_policies() -> None:
    with pytest.raises(PolicyError, match="healthcare"):
        load_policy("no-such-policy")


def test_defaults_leave_out_over_eager_entities() -> None:
    policy = parse_policy("version: 1\nname: p\n")
    assert "DATE_TIME" not in policy.pii.entities
    assert policy.pii.action == "pseudonymize"
    assert policy.pii.min_score == 0.5
