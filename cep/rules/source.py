"""Read rule files (YAML or JSON) into plain values, remembering where each value sits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import RuleIssue

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``("stages", 2, "where")`` -> ``stages[2].where``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass
class Document:
    """One rule document: its value and the 1-based (line, column) of every node."""

    file: str
    value: Any
    text: str
    index: int | None = None  # position in a multi-document YAML file
    source: str = ""  # this document's own text (the whole file unless multi-document)
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    styles: dict[Path, str | None] = field(default_factory=dict)
    issues: list[RuleIssue] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.file if self.index is None else f"{self.file}[document {self.index}]"

    def issue(self, path: Path, message: str, *, key: bool = False) -> RuleIssue:
        pos = (self.key_positions if key else self.positions).get(path)
        if pos is None:  # fall back to the closest enclosing node
            for n in range(len(path) - 1, -1, -1):
                pos = self.positions.get(path[:n])
                if pos:
                    break
        line, column = pos if pos else (None, None)
        return RuleIssue(self.label, format_path(path), message, line, column)

    def expr_position(self, path: Path, line: int, column: int) -> tuple[int, int] | None:
        """File (line, column) of (line, column) inside the scalar at ``path``."""
        pos = self.positions.get(path)
        if pos is None:
            return None
        style = self.styles.get(path)
        if style == "|":
            lines = self.text.splitlines()
            file_line = pos[0] + line
            if file_line > len(lines):
                return None
            first = next((t for t in lines[pos[0] :] if t.strip()), "")
            return file_line, len(first) - len(first.lstrip()) + column
        if style == ">":
            return None
        if line != 1:
            return None
        return pos[0], pos[1] + column - 1 + (1 if style in ("'", '"') else 0)


def read_documents(text: str, file: str) -> list[Document]:
    """Parse ``text``; a syntax error becomes a Document with one issue and no value."""
    if file.endswith(".json"):
        return [_read_json(text, file)]
    return _read_yaml(text, file)


def _read_json(text: str, file: str) -> Document:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        doc = Document(file, None, text)
        doc.issues.append(
            RuleIssue(file, "", f"invalid JSON: {exc.msg}; fix the syntax", exc.lineno, exc.colno)
        )
        return doc
    doc = Document(file, value, text, source=text)
    try:  # JSON is YAML: reuse the YAML walk for positions only
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _walk(node, (), doc)
    except yaml.YAMLError:
        pass
    return doc


def _read_yaml(text: str, file: str) -> list[Document]:
    loader = yaml.SafeLoader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            doc = Document(file, loader.construct_document(node), text)
            doc.source = text[node.start_mark.index : node.end_mark.index]
            _walk(node, (), doc)
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        doc = Document(file, None, text)
        doc.issues.append(
            RuleIssue(
                file,
                "",
                f"invalid YAML: {problem}; fix the syntax (quote values that contain ': ' or start with '!', '&', '*')",
                mark.line + 1 if mark else None,
                mark.column + 1 if mark else None,
            )
        )
        return [doc]
    finally:
        loader.dispose()
    if not docs:
        doc = Document(file, None, text)
        doc.issues.append(
            RuleIssue(file, "", "the file is empty; write a rule (see `kairos rules schema`)")
        )
        return [doc]
    if len(docs) > 1:
        for i, doc in enumerate(docs):
            doc.index = i
    else:
        docs[0].source = text
    return docs


def _walk(node: yaml.Node, path: Path, doc: Document) -> None:
    doc.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.ScalarNode):
        doc.styles[path] = node.style
    elif isinstance(node, yaml.MappingNode):
        seen: dict[str, Path] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            sub = (*path, key)
            if key in seen:
                doc.key_positions[sub] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                doc.issues.append(
                    doc.issue(sub, f"duplicate key '{key}'; keep one of them", key=True)
                )
            seen[key] = sub
            doc.key_positions[sub] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _walk(value_node, sub, doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), doc)
