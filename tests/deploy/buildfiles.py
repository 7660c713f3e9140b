"""Readers for the files that decide what gets installed: Dockerfile, Makefile, uv lock files,
.dockerignore. Small and strict: enough of each format for the checks in this folder."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

# ------------------------------------------------------------------ Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the (continued) line
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def dockerfile_instructions(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        joined = " ".join(part for part in buf if part)
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buf = []
    assert not buf, "Dockerfile ends inside a continued line"
    return out


def dockerfile_stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages in order) with ${ARG} expanded in FROM lines."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in dockerfile_instructions(text):
        if ins.keyword == "ARG" and not stages:
            name, _, default = ins.args.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif ins.keyword == "FROM":
            words = ins.args.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        else:
            assert stages or ins.keyword == "ARG", f"{ins.keyword} before FROM"
            stages[-1].instructions.append(ins)
    return args, stages


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT/CMD/HEALTHCHECK CMD."""
    import json

    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def env_values(stage: Stage) -> dict[str, str]:
    """ENV KEY=value pairs of a stage (later ones win)."""
    out: dict[str, str] = {}
    for ins in stage.all("ENV"):
        for word in shlex.split(ins.args):
            key, sep, value = word.partition("=")
            assert sep, f"ENV on line {ins.line}: use KEY=value"
            out[key] = value
    return out


# ------------------------------------------------------------------ pip / uv commands


@dataclass(frozen=True)
class PipInstall:
    """One `pip install` / `uv pip install` / `uv pip sync` command line."""

    verb: str  # install | sync
    requirements: tuple[str, ...]  # -r files (and sync's positional files)
    targets: tuple[str, ...]  # what is installed besides requirement files: ".", ".[x]"
    editable: tuple[str, ...]
    no_deps: bool


def pip_commands(shell: str) -> list[PipInstall]:
    """Every pip/uv install or sync in a shell command line (split on && ; |)."""
    out = []
    for part in re.split(r"&&|\|\||;|\|", shell):
        try:
            words = shlex.split(part)
        except ValueError:
            continue
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] in ("install", "sync"):
                out.append(_parse_pip(words[i + 1], words[i + 2 :]))
                break
    return out


_VALUE_FLAGS = {"--python", "-p", "-c", "--constraint", "--index-url", "-i", "--target"}


def _parse_pip(verb: str, words: list[str]) -> PipInstall:
    reqs: list[str] = []
    targets: list[str] = []
    editable: list[str] = []
    no_deps = False
    it = iter(words)
    for word in it:
        if word in ("-r", "--requirement"):
            reqs.append(next(it))
        elif word in ("-e", "--editable"):
            editable.append(next(it))
        elif word == "--no-deps":
            no_deps = True
        elif word in _VALUE_FLAGS:
            next(it)
        elif word.startswith("-"):
            continue
        elif verb == "sync":
            reqs.append(word)
        else:
            targets.append(word)
    return PipInstall(verb, tuple(reqs), tuple(targets), tuple(editable), no_deps)


def extras_of(target: str) -> set[str]:
    """`.[a,b]` -> {"a", "b"}; `.` -> set()."""
    m = re.search(r"\[([^\]]*)\]", target)
    return {e.strip() for e in m[1].split(",") if e.strip()} if m else set()


# ------------------------------------------------------------------ Makefile


def makefile_recipes(text: str) -> list[str]:
    """Recipe command lines with $(VAR) expanded (simple = := ?= assignments only)."""
    joined = re.sub(r"\\\n", " ", text)
    variables: dict[str, str] = {}
    recipes = []
    for line in joined.splitlines():
        if line.startswith("\t"):
            recipes.append(line.strip().lstrip("@-").strip())
            continue
        m = re.match(r"^([A-Za-z_][\w]*)\s*(\?=|:=|=)\s*(.*)$", line)
        if m and not (m[2] == "?=" and m[1] in variables):
            variables[m[1]] = m[3].split("#")[0].strip()

    def expand(s: str) -> str:
        for _ in range(10):
            s2 = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), s)
            if s2 == s:
                break
            s = s2
        return s

    return [expand(r) for r in recipes]


# ------------------------------------------------------------------ uv lock files


@dataclass(frozen=True)
class Lock:
    path: Path
    command: tuple[str, ...]  # the `uv pip compile ...` argv from the header
    pins: dict[str, str]  # normalised name -> version
    required_by: dict[str, set[str]]  # normalised name -> names in its "# via" lines

    @property
    def extras(self) -> set[str]:
        return _flag_values(self.command, "--extra")

    @property
    def python_version(self) -> str | None:
        values = _flag_values(self.command, "--python-version")
        return values.pop() if values else None

    @property
    def constraints(self) -> set[str]:
        return _flag_values(self.command, "-c") | _flag_values(self.command, "--constraint")


def _flag_values(argv: tuple[str, ...], flag: str) -> set[str]:
    out = set()
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            out.add(argv[i + 1])
        elif word.startswith(flag + "="):
            out.add(word.split("=", 1)[1])
    return out


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> Lock:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# This file was autogenerated by uv"), f"{path}: not a uv lock"
    command = tuple(shlex.split(lines[1].lstrip("#").strip()))
    pins: dict[str, str] = {}
    required_by: dict[str, set[str]] = {}
    current = None
    for line in lines[2:]:
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            current = normalise(m[1])
            pins[current] = m[2]
            required_by[current] = set()
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][^\s]*)(\s|$)", line)
        if current and via and via[1] != "via":
            required_by[current].add(via[1])
    return Lock(path, command, pins, required_by)


# ------------------------------------------------------------------ .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go filepath.Match plus **), as used by .dockerignore."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
            continue
        else:
            out += re.escape(c)
        i += 1
    return re.compile(f"^{out}$")


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[bool, re.Pattern[str]], ...]  # (is exception "!", regex)

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = line[1:].strip() if negate else line
            line = line.strip("/")
            line = re.sub(r"/+", "/", line)
            rules.append((negate, _pattern_regex(line)))
        return cls(tuple(rules))

    def excludes(self, relpath: str) -> bool:
        """Whether the file at ``relpath`` (posix, relative to the context) is left out.

        Like Docker, a pattern applies to a path when it matches the path or one of its
        parent directories; the last pattern that applies decides.
        """
        parts = relpath.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for negate, regex in self.rules:
            if any(regex.match(c) for c in candidates):
                excluded = not negate
        return excluded
