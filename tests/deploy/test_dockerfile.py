"""The container image: hadolint, and the image installs exactly what CI installs and tests
(same lock pins, same extras minus the test tools), so the Dockerfile cannot drift."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.deploy.buildfiles import (
    DockerIgnore,
    PipInstall,
    Stage,
    dockerfile_stages,
    env_values,
    exec_form,
    extras_of,
    makefile_recipes,
    normalise,
    pip_commands,
    read_lock,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MAKEFILE = ROOT / "Makefile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VENV_BIN = Path(sys.executable).parent
UV = VENV_BIN / "uv"

#: Extras that only CI needs (test runners, linters); the image leaves them out.
TEST_EXTRAS = {"test"}


def stages() -> list[Stage]:
    return dockerfile_stages(DOCKERFILE.read_text())[1]


def final_stage() -> Stage:
    return stages()[-1]


def builder_installs() -> list:
    return [c for s in stages() for ins in s.all("RUN") for c in pip_commands(ins.args)]


def ci_installs() -> list:
    return [c for line in makefile_recipes(MAKEFILE.read_text()) for c in pip_commands(line)]


def copy_sources(stage: Stage) -> list[str]:
    """Build-context paths a stage copies (COPY without --from)."""
    out = []
    for ins in stage.all("COPY"):
        words = ins.args.split()
        if any(w.startswith("--from") for w in words):
            continue
        out += [w for w in words[:-1] if not w.startswith("--")]
    return out


# ------------------------------------------------------------------ lint


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = VENV_BIN / "hadolint"
    assert binary.exists(), f"{binary} is missing: install the lock (make venv)"
    return subprocess.run(
        [str(binary), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hadolint_finds_nothing() -> None:
    proc = hadolint(DOCKERFILE)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_hadolint_would_catch_an_unpinned_apt_install(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        DOCKERFILE.read_text().replace(
            "USER 10001:10001", "RUN apt-get update && apt-get install -y curl\nUSER 10001:10001"
        )
    )
    proc = hadolint(bad)
    assert proc.returncode != 0 and "DL3008" in proc.stdout, proc.stdout


# ------------------------------------------------------------------ same install as CI


def test_image_installs_the_way_ci_does() -> None:
    ci = ci_installs()
    ci_locks = {r for c in ci for r in c.requirements}
    assert ci_locks == {"requirements.lock"}, f"Makefile installs {ci_locks}"
    ci_lock = read_lock(ROOT / "requirements.lock")
    ci_project = [c for c in ci if _installs_project(c)]
    assert ci_project, "Makefile does not install the project itself"
    ci_extras = ci_lock.extras | {
        e for c in ci_project for t in c.targets + c.editable for e in extras_of(t)
    }

    image = builder_installs()
    image_locks = {r for c in image for r in c.requirements}
    assert len(image_locks) == 1, f"the Dockerfile installs {image_locks or 'no lock file'}"
    image_lock = read_lock(ROOT / image_locks.pop())
    assert image_lock.path.name in copy_sources(stages()[-2]), "the lock installed is not copied"

    # The runtime part of the CI lock: same pins, same extras without the test tools.
    assert image_lock.extras == ci_extras - TEST_EXTRAS, (
        f"{image_lock.path.name} is compiled with extras {sorted(image_lock.extras)}; "
        f"CI installs {sorted(ci_extras)}: regenerate it (see docs/deploy.md)"
    )
    assert image_lock.path == ci_lock.path or "requirements.lock" in image_lock.constraints
    assert image_lock.python_version == ci_lock.python_version

    # The project itself: no dependency resolution beyond the lock, in both.
    image_project = [c for c in image if _installs_project(c)]
    assert image_project and all(c.no_deps for c in image_project + ci_project)
    assert {e for c in image_project for t in c.targets for e in extras_of(t)} <= image_lock.extras


def test_runtime_lock_is_the_runtime_part_of_the_ci_lock() -> None:
    ci = read_lock(ROOT / "requirements.lock")
    runtime = read_lock(ROOT / "requirements-runtime.lock")
    changed = {n: (v, ci.pins.get(n)) for n, v in runtime.pins.items() if ci.pins.get(n) != v}
    assert not changed, (
        f"requirements-runtime.lock pins differ from requirements.lock (runtime, CI): {changed}; "
        "regenerate it: .venv/bin/uv pip compile pyproject.toml --extra rocksdb "
        "--python-version 3.11 -c requirements.lock -o requirements-runtime.lock"
    )
    # Exactly what the runtime requirements pull in, following the CI lock's "# via" graph.
    direct = list(PYPROJECT["project"]["dependencies"])
    for extra in runtime.extras:
        direct += PYPROJECT["project"]["optional-dependencies"][extra]
    todo = [normalise(_req_name(r)) for r in direct]
    closure: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo += [
                child
                for child, parents in ci.required_by.items()
                if name in {normalise(p) for p in parents}
            ]
    assert set(runtime.pins) == closure, (
        f"missing from requirements-runtime.lock: {sorted(closure - set(runtime.pins))}; "
        f"not needed at runtime: {sorted(set(runtime.pins) - closure)}"
    )
    test_tools = {
        normalise(_req_name(r))
        for e in TEST_EXTRAS
        for r in PYPROJECT["project"]["optional-dependencies"][e]
    }
    assert not test_tools & set(runtime.pins), "the image would ship test tools"


def _req_name(requirement: str) -> str:
    import re

    return re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*", requirement)[0]


def _installs_project(command: PipInstall) -> bool:
    return any(t == "." or t.startswith(".[") for t in command.targets + command.editable)


# ------------------------------------------------------------------ image shape


def test_image_is_multistage_on_one_python() -> None:
    all_stages = stages()
    python = [s for s in all_stages if "python:" in s.base]
    assert len(python) >= 2, "builder and runtime stages expected"
    assert len({s.base for s in python}) == 1, "builder and runtime must use the same base image"
    base = python[0].base
    assert "slim" in base
    lock = read_lock(ROOT / "requirements-runtime.lock")
    assert base.split(":", 1)[1].startswith(f"{lock.python_version}-"), (base, lock.python_version)
    assert PYPROJECT["project"]["requires-python"] == f">={lock.python_version}"
    final = final_stage()
    assert not final.all("RUN") or all("pip" not in i.args for i in final.all("RUN")), (
        "install in the builder stage, not in the runtime stage"
    )
    assert any("--from=builder" in i.args for i in final.all("COPY"))


def test_image_runs_as_the_chart_user_with_the_venv_on_path() -> None:
    final = final_stage()
    user = final.last("USER")
    assert user is not None, "the runtime stage must set USER"
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot)"
    values = yaml.safe_load((ROOT / "helm" / "kairos" / "values.yaml").read_text())
    for ctx in ("podSecurityContext", "containerSecurityContext"):
        assert values[ctx]["runAsUser"] == int(uid), ctx
        assert values[ctx]["runAsGroup"] == int(gid or uid), ctx
    env = env_values(final)
    venv = env["VIRTUAL_ENV"]
    assert env["PATH"].split(":")[0] == f"{venv}/bin"
    assert f"{venv}/bin/python" in " ".join(i.args for i in stages()[-2].all("RUN"))
    data_dir = env["KAIROS_DATA_DIR"]
    assert values["persistence"]["mountPath"] == data_dir
    assert any(data_dir in i.args and "10001" in i.args for i in final.all("RUN")), (
        "create KAIROS_DATA_DIR owned by the image user"
    )


def test_entrypoint_is_kairos_worker() -> None:
    final = final_stage()
    assert exec_form(final.last("ENTRYPOINT").args) == ["kairos"]
    assert "kairos" in PYPROJECT["project"]["scripts"]
    assert exec_form(final.last("CMD").args) == ["worker"]
    from app.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "worker" in sub.choices, "`kairos worker` is not a sub-command of app.cli"


def test_build_context_holds_exactly_what_the_dockerfile_copies() -> None:
    ignore = DockerIgnore.parse(DOCKERIGNORE.read_text())
    sources = [src for stage in stages() for src in copy_sources(stage)]
    for src in sources:
        path = ROOT / src
        assert path.exists(), f"the Dockerfile copies {src}, which does not exist"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        kept = [f for f in files if not ignore.excludes(f.relative_to(ROOT).as_posix())]
        assert kept, f".dockerignore leaves {src} out of the build context"
        cached = [f for f in kept if "__pycache__" in f.parts or f.suffix == ".pyc"]
        assert not cached, f"caches in the build context: {cached[:3]}"
    # Every package setuptools would install, and the readme it needs, is copied.
    patterns = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in patterns}
    assert packages <= set(sources), f"not copied: {sorted(packages - set(sources))}"
    assert {"pyproject.toml", PYPROJECT["project"]["readme"]} <= set(sources)
    for private in (
        ".git/HEAD",
        ".venv/pyvenv.cfg",
        "tests/__init__.py",
        "helm/kairos/Chart.yaml",
        "requirements.lock",
        ".env",
        "secrets/key.pem",
    ):
        assert ignore.excludes(private), f"{private} would be sent to the Docker daemon"


def test_dockerignore_matching_follows_docker_rules() -> None:
    ignore = DockerIgnore.parse("*\n!app/\n**/__pycache__\n!app/keep/__pycache__\n")
    assert ignore.excludes("README.md")
    assert not ignore.excludes("app/web/server.py")
    assert ignore.excludes("app/web/__pycache__/server.cpython-311.pyc")
    assert not ignore.excludes("app/keep/__pycache__/x.pyc")
    assert ignore.excludes("apps/x.py")


# ------------------------------------------------------------------ healthcheck


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _server(status: int) -> Iterator[tuple[int, list[str]]]:
    handler = type("H", (_Handler,), {"status": status, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler.paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _healthcheck(port: int | None) -> int:
    ins = final_stage().last("HEALTHCHECK")
    assert ins is not None, "the runtime stage needs a HEALTHCHECK"
    _, _, command = ins.args.partition(" CMD ")
    argv = exec_form(command.strip())
    assert argv[0] == "python", "the healthcheck runs the image's python (no curl in slim)"
    env = {k: v for k, v in os.environ.items() if k != "KAIROS_WEB_PORT"}
    if port is not None:
        env["KAIROS_WEB_PORT"] = str(port)
    return subprocess.run(
        [sys.executable, *argv[1:]], env=env, timeout=30, capture_output=True
    ).returncode


def test_healthcheck_passes_only_when_healthz_answers_200() -> None:
    with _server(200) as (port, paths):
        assert _healthcheck(port) == 0
        assert paths == ["/healthz"]
    with _server(503) as (port, paths):
        assert _healthcheck(port) != 0
        assert paths == ["/healthz"]
    with _server(200) as (port, _):
        pass  # closed again: nothing listens on that port now
    assert _healthcheck(port) != 0


def test_healthcheck_defaults_to_the_web_port_of_the_image() -> None:
    ins = final_stage().last("HEALTHCHECK")
    env = env_values(final_stage())
    [exposed] = final_stage().last("EXPOSE").args.split()
    assert env["KAIROS_WEB_PORT"] == exposed
    assert f"or '{exposed}'" in ins.args


# ------------------------------------------------------------------ the runtime environment


@pytest.mark.timeout(300)
def test_runtime_lock_alone_runs_every_module(tmp_path: Path) -> None:
    """A venv from requirements-runtime.lock only (as in the image) imports every module of
    the packages the image ships and runs `kairos worker --help`."""
    venv = tmp_path / "venv"
    subprocess.run(
        [str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120
    )
    sync = subprocess.run(
        [
            str(UV),
            "pip",
            "sync",
            "-q",
            "--offline",
            "--python",
            str(venv / "bin" / "python"),
            str(ROOT / "requirements-runtime.lock"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "UV_LINK_MODE": "copy"},
    )
    assert sync.returncode == 0, (
        "could not install requirements-runtime.lock from the uv cache (offline); "
        f"install the CI lock first (make venv), then rerun:\n{sync.stderr}"
    )
    ignore = DockerIgnore.parse(DOCKERIGNORE.read_text())
    context = tmp_path / "context"
    for src in copy_sources(stages()[-2]):
        path = ROOT / src
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for f in files:
            rel = f.relative_to(ROOT).as_posix()
            if not ignore.excludes(rel):
                (context / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, context / rel)
    packages = sorted(
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    )
    script = (
        "import importlib, pkgutil, sys\n"
        f"for name in {packages!r}:\n"
        "    pkg = importlib.import_module(name)\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, name + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "from app.cli import main\n"
        "sys.exit(main(['worker', '--help']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        cwd=context,
        env={**env, "PYTHONPATH": str(context), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage: kairos worker" in proc.stdout
