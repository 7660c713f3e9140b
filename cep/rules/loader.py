"""Load and validate rule files: everything is checked, nothing of an invalid file is returned."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .build import build_rule, path_of
from .errors import RuleIssue, RuleValidationError
from .model import Rule
from .schema import schema_issues
from .source import Document, read_documents

RULE_SUFFIXES = (".yaml", ".yml", ".json")


def _engine_check(rule: Rule, doc: Document) -> list[RuleIssue]:
    from .compiler import engine_issues

    return [doc.issue(path_of(path), message) for path, message in engine_issues(rule)]


def rule_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[RuleIssue]]:
    """Rule files named by ``paths`` (directories are searched recursively, sorted)."""
    files: list[Path] = []
    issues: list[RuleIssue] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix in RULE_SUFFIXES and f.is_file())
            if not found:
                issues.append(
                    RuleIssue(str(p), "", "no rule files (*.yaml, *.yml, *.json) in this directory")
                )
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            issues.append(RuleIssue(str(p), "", "no such file or directory; check the path"))
    return files, issues


def check_text(text: str, filename: str) -> tuple[list[Rule], list[RuleIssue]]:
    """Rules of one file's text and its issues; the rules are empty when there is any issue."""
    rules: list[Rule] = []
    issues: list[RuleIssue] = []
    for doc in read_documents(text, filename):
        rule, found = _check_document(doc)
        issues.extend(sorted(found, key=lambda i: (i.line or 0, i.column or 0)))
        if rule is not None:
            rules.append(rule)
    return ([] if issues else rules), issues


def _check_document(doc: Document) -> tuple[Rule | None, list[RuleIssue]]:
    if doc.issues or doc.value is None:
        return None, doc.issues
    found = schema_issues(doc)
    if found:
        return None, found
    rule, found = build_rule(doc)
    if rule is None:
        return None, found
    found = _engine_check(rule, doc)
    return (None if found else rule), found


def validate_paths(paths: Iterable[str | Path]) -> tuple[list[Rule], list[RuleIssue]]:
    """Valid rules of every file, and every issue found (including duplicate rule names)."""
    files, issues = rule_files(paths)
    rules: list[Rule] = []
    by_name: dict[str, str] = {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(RuleIssue(str(f), "", f"cannot read the file: {exc}"))
            continue
        found, file_issues = check_text(text, str(f))
        issues.extend(file_issues)
        for rule in found:
            if rule.name in by_name:
                issues.append(
                    RuleIssue(
                        rule.file,
                        "name",
                        f"rule '{rule.name}' is already defined in "
                        f"{by_name[rule.name]}; rule names are unique, rename one",
                    )
                )
                continue
            by_name[rule.name] = rule.file
            rules.append(rule)
    return rules, issues


def load_rules(paths: Iterable[str | Path]) -> list[Rule]:
    """Every rule of ``paths``; raise RuleValidationError listing every issue if any."""
    rules, issues = validate_paths(paths)
    if issues:
        raise RuleValidationError(issues)
    return rules


def load_rules_text(text: str, filename: str = "<string>") -> list[Rule]:
    """The rules of one file's text (e.g. a record of the rules topic)."""
    rules, issues = check_text(text, filename)
    if issues:
        raise RuleValidationError(issues)
    return rules
