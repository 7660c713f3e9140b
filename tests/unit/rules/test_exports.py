import cep.rules

DOCUMENTED = {
    "Action",
    "ContextSpec",
    "Detection",
    "EventError",
    "Route",
    "Rule",
    "RuleError",
    "RuleIssue",
    "RuleRunner",
    "RuleValidationError",
    "Stage",
    "load_rules",
    "load_rules_text",
    "rule_schema",
    "validate_paths",
}


def test_public_names_are_the_documented_ones() -> None:
    assert set(cep.rules.__all__) == DOCUMENTED
    assert cep.rules.__all__ == sorted(cep.rules.__all__)
    for name in DOCUMENTED:
        assert hasattr(cep.rules, name), name
