"""Small builders shared by the rules tests."""

from __future__ import annotations

import textwrap

from cep.rules.loader import check_text

BASE = """\
name: r
source: events
key: k
stages:
  - name: a
    where: event.type == 'A'
emit: {kind: alert, topic: alerts}
"""


def issues(text: str, filename: str = "rule.yaml") -> list[str]:
    """Every issue of ``text`` as its one-line message."""
    rules, found = check_text(textwrap.dedent(text), filename)
    assert not (rules and found)
    return [str(i) for i in found]


def rule(text: str, filename: str = "rule.yaml"):
    rules, found = check_text(textwrap.dedent(text), filename)
    assert not found, [str(i) for i in found]
    assert len(rules) == 1
    return rules[0]
