"""What holds a worker's event loop: every callback's CPU and wall time, per thread.

A lookup on the web view waits for whatever runs on the worker's event loop before it: asyncio
runs ready callbacks one at a time, in order, and one callback (a task step, an I/O callback)
runs until it returns. This instrument times every ``asyncio.Handle._run`` (a task step is
one) with ``time.thread_time()`` (CPU of this thread: does not depend on the machine's load)
and ``time.perf_counter()`` (wall: includes waiting for a core and for the GIL), and keeps

- per thread, a histogram of the CPU time per callback and its totals, and
- every callback of at least :data:`KEEP_MS` CPU with when it ran and who it was: a task step
  as ``<coroutine> @ <where it resumed> -> <where it suspended next>`` (innermost frames of
  its await chain), any other callback by name;
- every garbage collection of at least :data:`KEEP_MS` CPU (generation, duration, thread),
  and how much of each kept callback was spent in the collector: it runs inside whatever
  callback allocated last;
- what runs inside the long callbacks of the main thread: every :data:`SAMPLE_MS` a sampler
  thread looks at the main thread's stack while one callback has run for more than
  :data:`LONG_MS` and counts its innermost project frames (``agents/``, ``app/``, ``cep/``,
  ``tables/``) under the callback's start time.

Opt-in, for benchmarks: ``KAIROS_LOOP_STATS=<file.json>`` in a worker's environment together
with ``bench/looplag_hook`` on its ``PYTHONPATH`` (its ``sitecustomize`` calls
:func:`install`); the file is written when the process exits. :func:`report` summarises one.

    PYTHONPATH=.:bench/looplag_hook KAIROS_LOOP_STATS=/tmp/loop.json kairos worker
    .venv/bin/python -m bench.looplag /tmp/loop.json [--since T0 --until T1]
"""

from __future__ import annotations

import argparse
import asyncio.events
import atexit
import gc
import json
import os
import sys
import threading
import time
from collections import defaultdict
from typing import Any

__all__ = ["install", "report"]

#: Callbacks of at least this much CPU (ms) are kept one by one, with their label.
KEEP_MS = 1.0
#: The sampler's period, and the age of a callback from which its stack is sampled (ms).
SAMPLE_MS = 1.0
LONG_MS = 5.0
#: Project frames (innermost first) that name a sample.
SAMPLE_DEPTH = 3
#: Histogram bucket upper bounds (ms of CPU per callback).
BOUNDS_MS = (0.1, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, float("inf"))


_LIBRARY = ("/site-packages/", "/lib/python3")


def _innermost(coro: Any) -> Any:
    """Where a coroutine is suspended: the innermost frame of its await chain that is not in
    a library (the innermost one when all are), or None."""
    frame = None
    depth = 0
    while coro is not None and depth < 64:
        f = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        f = f or getattr(coro, "ag_frame", None)
        if f is None:
            break
        if frame is None or not any(m in f.f_code.co_filename for m in _LIBRARY):
            frame = f
        awaited = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "gi_yieldfrom", None)
            or getattr(coro, "ag_await", None)
        )
        if awaited is not None and f.f_code.co_name == "_execute_actor":
            # a Faust agent: ``await coro`` on an actor whose ``it`` is the agent's coroutine
            awaited = getattr(f.f_locals.get("coro"), "it", awaited)
        coro = awaited
        depth += 1
    return frame


def _at(frame: Any) -> tuple[Any, int] | None:
    return None if frame is None else (frame.f_code, frame.f_lineno)


def _fn(frame: Any) -> str:
    """``path function`` of a frame (no line: the samples of one function add up)."""
    return _fmt((frame.f_code, 0)).replace(":0 ", " ")


def _fmt(at: tuple[Any, int] | None) -> str:
    if at is None:
        return "?"
    code, line = at
    path = code.co_filename
    for marker in ("/site-packages/", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line} {code.co_name}"


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.threads: dict[str, dict[str, Any]] = {}
        # (t, thread, cpu ms, wall ms, who, ms of it in the garbage collector)
        self.kept: list[tuple[float, str, float, float, str, float]] = []
        self.samples: dict[str, list[float]] = {}  # stack -> start times of the callbacks seen
        self.gc: list[tuple[float, str, int, float]] = []  # (t, thread, generation, cpu ms)
        self.running: float | None = None  # perf_counter at the main thread's callback start
        self.running_t = 0.0  # its time.time()
        self.running_from: tuple[Any, int] | None = None  # where its task resumed

    def thread(self, name: str) -> dict[str, Any]:
        slot = self.threads.get(name)
        if slot is None:
            slot = self.threads[name] = {
                "callbacks": 0,
                "cpu_s": 0.0,
                "wall_s": 0.0,
                "hist": [0] * len(BOUNDS_MS),
            }
        return slot


_STATS = _Stats()


def install(path: str) -> None:
    """Time every asyncio callback of this process; write the figures to ``path`` at exit."""
    handle = asyncio.events.Handle
    if getattr(handle, "_looplag", False):
        return
    original = handle._run
    thread_time, perf = time.thread_time, time.perf_counter
    keep = KEEP_MS / 1000
    bounds = [b / 1000 for b in BOUNDS_MS]
    stats = _STATS
    local = threading.local()

    main = threading.main_thread()

    def run(self: Any) -> None:
        is_main = threading.current_thread() is main
        callback = self._callback
        task = getattr(callback, "__self__", None)
        resumed = None
        if isinstance(task, asyncio.Task):
            resumed = _at(_innermost(task.get_coro()))
        else:
            task = None
        c0, w0 = thread_time(), perf()
        local.gc = 0.0
        if is_main:
            stats.running_t = time.time()
            stats.running_from = resumed
            stats.running = w0
        try:
            original(self)
        finally:
            if is_main:
                stats.running = None
            cpu = thread_time() - c0
            wall = perf() - w0
            slot = getattr(local, "slot", None)
            if slot is None:
                with stats.lock:
                    slot = local.slot = stats.thread(threading.current_thread().name)
            slot["callbacks"] += 1
            slot["cpu_s"] += cpu
            slot["wall_s"] += wall
            hist = slot["hist"]
            for i, bound in enumerate(bounds):
                if cpu <= bound:
                    hist[i] += 1
                    break
            if cpu >= keep:
                if task is not None:
                    coro = task.get_coro()
                    name = getattr(coro, "__qualname__", type(coro).__name__)
                    who = f"{name} @ {_fmt(resumed)} -> {_fmt(_at(_innermost(coro)))}"
                else:
                    who = getattr(callback, "__qualname__", None) or repr(callback)[:120]
                stats.kept.append(
                    (
                        time.time(),
                        threading.current_thread().name,
                        cpu * 1000,
                        wall * 1000,
                        who,
                        local.gc * 1000,
                    )
                )

    handle._run = run  # type: ignore[method-assign]
    handle._looplag = True  # type: ignore[attr-defined]
    atexit.register(_write, path)
    gc_started: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = thread_time()
        else:
            cpu = thread_time() - gc_started[0]
            local.gc = getattr(local, "gc", 0.0) + cpu
            if cpu * 1000 >= KEEP_MS:
                stats.gc.append(
                    (time.time(), threading.current_thread().name, info["generation"], cpu * 1000)
                )

    gc.callbacks.append(on_gc)
    threading.Thread(target=_sample, args=(main.ident,), name="looplag", daemon=True).start()


_PROJECT = ("/agents/", "/app/", "/cep/", "/tables/")


def _sample(ident: int | None) -> None:
    """Count the main thread's innermost project frames while a callback runs long."""
    stats = _STATS
    period, long = SAMPLE_MS / 1000, LONG_MS / 1000
    perf = time.perf_counter
    while True:
        time.sleep(period)
        started = stats.running
        if started is None or perf() - started < long:
            continue
        frame = sys._current_frames().get(ident)
        names: list[str] = []
        inner = None
        while frame is not None and len(names) < SAMPLE_DEPTH:
            path = frame.f_code.co_filename
            if any(m in path for m in _PROJECT) and "site-packages" not in path:
                names.append(_fn(frame))
            elif inner is None and not names:
                inner = _fn(frame)
            frame = frame.f_back
        if stats.running is None:
            continue  # the callback ended meanwhile
        key = " < ".join(names) + (f" [in {inner}]" if inner else "")
        key = f"{key} (task resumed at {_fmt(stats.running_from)})"
        stats.samples.setdefault(key, []).append(stats.running_t)


def _write(path: str) -> None:
    with _STATS.lock:
        doc = {
            "pid": os.getpid(),
            "keep_ms": KEEP_MS,
            "bounds_ms": [b if b != float("inf") else None for b in BOUNDS_MS],
            "threads": _STATS.threads,
            "kept": _STATS.kept,
            "samples": _STATS.samples,
            "gc": _STATS.gc,
            "sample_ms": SAMPLE_MS,
        }
    with open(path, "w") as out:
        json.dump(doc, out)


# -- the summary ----------------------------------------------------------------------------


def report(
    doc: dict[str, Any], since: float = 0.0, until: float = float("inf"), top: int = 12
) -> dict[str, Any]:
    """Distribution of the kept callbacks (>= keep_ms CPU) per thread within [since, until],
    and the top offenders by total CPU."""
    out: dict[str, Any] = {"threads": {}, "top": []}
    by_thread: dict[str, list[float]] = defaultdict(list)
    offenders: dict[tuple[str, str], list[float]] = defaultdict(list)
    walls: dict[tuple[str, str], float] = defaultdict(float)
    in_gc: dict[str, list[float]] = defaultdict(list)
    for t, thread, cpu, wall, who, *rest in doc["kept"]:
        if since <= t <= until:
            by_thread[thread].append(cpu)
            in_gc[thread].append(cpu - (rest[0] if rest else 0.0))
            offenders[thread, who].append(cpu)
            walls[thread, who] = max(walls[thread, who], wall)
    for thread, cpus in sorted(by_thread.items()):
        cpus.sort()
        n = len(cpus)
        out["threads"][thread] = {
            "kept": n,
            "kept_cpu_s": round(sum(cpus) / 1000, 3),
            "p50_ms": round(cpus[n // 2], 2),
            "p90_ms": round(cpus[min(n - 1, int(n * 0.9))], 2),
            "p99_ms": round(cpus[min(n - 1, int(n * 0.99))], 2),
            "max_ms": round(cpus[-1], 2),
            "over_5ms": sum(c > 5 for c in cpus),
            "over_10ms": sum(c > 10 for c in cpus),
            "over_20ms": sum(c > 20 for c in cpus),
            "over_50ms": sum(c > 50 for c in cpus),
        }
        without = sorted(in_gc[thread])
        out["threads"][thread]["without_gc"] = {
            "p99_ms": round(without[min(n - 1, int(n * 0.99))], 2),
            "max_ms": round(without[-1], 2),
            "over_10ms": sum(c > 10 for c in without),
            "over_20ms": sum(c > 20 for c in without),
        }
    pauses = [(gen, ms) for t, _th, gen, ms in doc.get("gc", []) if since <= t <= until]
    out["gc"] = {
        f"gen{gen}": {
            "n": sum(g == gen for g, _ in pauses),
            "max_ms": round(max([ms for g, ms in pauses if g == gen], default=0.0), 1),
            "total_ms": round(sum(ms for g, ms in pauses if g == gen), 1),
        }
        for gen in (0, 1, 2)
    }
    stacks = {
        stack: sum(since <= t <= until for t in times)
        for stack, times in doc.get("samples", {}).items()
    }
    total = sum(stacks.values()) or 1
    out["samples"] = [
        {"share": round(n / total, 3), "n": n, "stack": stack}
        for stack, n in sorted(stacks.items(), key=lambda kv: -kv[1])[:top]
        if n
    ]
    ranked = sorted(offenders.items(), key=lambda kv: -sum(kv[1]))[:top]
    for (thread, who), cpus in ranked:
        out["top"].append(
            {
                "thread": thread,
                "who": who,
                "n": len(cpus),
                "cpu_s": round(sum(cpus) / 1000, 3),
                "max_cpu_ms": round(max(cpus), 2),
                "max_wall_ms": round(walls[thread, who], 2),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--since", type=float, default=0.0, help="unix time")
    parser.add_argument("--until", type=float, default=float("inf"), help="unix time")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    with open(args.path) as f:
        doc = json.load(f)
    json.dump(report(doc, args.since, args.until, args.top), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
