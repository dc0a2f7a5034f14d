"""`launder sweep`: many runs over a grid (or zipped lists) of RunConfig fields and seeds.

Sweep folder:
  sweep.json           the specification and one entry per point: status (pending, running, submitted
                       to Ray, done, failed), error, seconds, result
  points/<name>/       a run folder per point (config.json, metrics.json schema v1, report.md, ...)
  shared/              teachers, CE-only students, tiny bases and the teacher-logit cache, each
                       keyed by the fields it depends on (``sharing.py``) and linked from the points
A point whose run finished is skipped when the sweep is run again, so an interrupted sweep resumes
(unfinished points resume from their checkpoints); a failing point is recorded with its error and
the sweep goes on. A point waits for the points that first train its shared phases (its
dependencies), so two processes never train the same teacher; the phase folders' locks hold that
even when the order cannot (``sharing.py``). The sweep folder itself is locked (``.lock``, naming the
holder): a second `launder sweep` on it is refused.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..train.checkpoint import read_json, write_json
from .config import (
    COMMAND_LINE,
    FIELDS,
    KEYS,
    RUNTIME_FIELDS,
    RunConfig,
    check_type,
    parse_toml,
    run_values,
    validate,
)
from .sharing import SHARED_PHASES, shared_keys

SWEEP_SCHEMA_VERSION = 1
KIND = "pylaundering-sweep"
RESULT_ARMS = ("teacher", "student", "control_student", "ce_student")


# ------------------------------------------------------------------------------------------------
# Specification


def parse_value(key: str, text: str, source: str = COMMAND_LINE) -> Any:
    """One value of ``key`` from command-line text, converted to the field's type and checked."""
    kind = KEYS[key].type
    t = text.strip()
    if t.lower() in ("none", "null") and "None" in kind:
        return check_type(key, None, source)
    if kind.startswith("bool"):
        if t.lower() not in ("true", "false"):
            raise ConfigError(key, f"expected true or false, got {t!r}", source)
        return t.lower() == "true"
    # only the conversion is guarded: the check's own ConfigError (e.g. a non-finite number) keeps its words
    if kind.startswith("int"):
        try:
            value = int(t)
        except ValueError:
            raise ConfigError(key, f"expected an integer, got {t!r}", source) from None
        return check_type(key, value, source)
    if kind.startswith("float"):
        try:
            value = float(t)
        except ValueError:
            raise ConfigError(key, f"expected a number, got {t!r}", source) from None
        return check_type(key, value, source)
    return check_type(key, t, source)


def parse_param(text: str) -> tuple[str, list]:
    """``--param field=v1,v2,...`` (or ``field=a..b`` for an inclusive integer range)."""
    key, sep, values = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep:
        raise ConfigError("param", f"expected FIELD=V1,V2,... (e.g. alpha=0,0.5,1), got {text!r}", COMMAND_LINE)
    check_field(key, COMMAND_LINE)
    if not values.strip():
        raise ConfigError(key, "an empty list of values", COMMAND_LINE)
    m = re.fullmatch(r"\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*", values)
    if m and KEYS[key].type.startswith("int"):
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < lo:
            raise ConfigError(key, f"empty range {values!r}", COMMAND_LINE)
        return key, [check_type(key, v, COMMAND_LINE) for v in range(lo, hi + 1)]
    parts = [v for v in values.split(",")]
    if any(not v.strip() for v in parts):
        raise ConfigError(key, f"an empty value in {values!r}", COMMAND_LINE)
    return key, [parse_value(key, v) for v in parts]


def check_field(key: str, source: str | None) -> None:
    if key == "seed":
        raise ConfigError("seed", "sweep seeds with --seeds N (or --seed-list), not --param seed=...", source)
    if key not in FIELDS:
        raise ConfigError(key, f"not a run setting; valid fields: {', '.join(sorted(FIELDS - {'seed'}))}", source)


def read_sweep_toml(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run fields, sweep table) from a TOML file with a ``[run]`` table (or top-level run keys)
    and a ``[sweep]`` table: ``params = {alpha = [0, 0.5, 1], loss = ["kl", "mse"]}``,
    ``seeds = 3`` or ``seeds = [0, 4]``, ``zip = false``."""
    p = Path(path)
    data = parse_toml(p)
    sweep = data.pop("sweep", {}) or {}
    if not isinstance(sweep, dict):
        raise ConfigError("sweep", "expected a table", str(p))
    unknown = sorted(set(sweep) - {"params", "seeds", "zip"})
    if unknown:
        raise ConfigError(f"sweep.{unknown[0]}", "unknown key; the [sweep] table takes params, seeds, zip", str(p))
    params = {}
    for key, values in (sweep.get("params") or {}).items():
        check_field(key, str(p))
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise ConfigError(f"sweep.params.{key}", "an empty list of values", str(p))
        params[key] = [check_type(key, v, str(p)) for v in values]
    spec = {"params": params, "seeds": sweep.get("seeds"), "zip": bool(sweep.get("zip", False))}
    run = run_values(data.get("run", data), str(p))
    return run, spec


def seed_list(seeds: int | list | None, base_seed: int) -> list[int]:
    if seeds is None:
        return [base_seed]
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list)):
        raise ConfigError("seeds", f"expected a count or a list of seeds, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError("seeds", f"must be at least 1, got {seeds}")
        return [base_seed + i for i in range(seeds)]
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ConfigError("seeds", f"expected a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"repeated seeds in {seeds!r}")
    return list(seeds)


@dataclass
class Point:
    name: str
    params: dict[str, Any]
    seed: int
    config: RunConfig
    deps: list[str] = field(default_factory=list)

    @property
    def dir(self) -> str:
        return f"points/{self.name}"


def _fmt(v: Any) -> str:
    text = "none" if v is None else (repr(v) if isinstance(v, float) else str(v))
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text)[:40]


def plan(base: RunConfig, params: dict[str, list], seeds: list[int], *, zip_: bool = False) -> list[Point]:
    """Every point (grid product or zipped lists) x seed, each configuration validated, with the
    points it waits for (the first point to need each of its shared phases)."""
    keys = list(params)
    if zip_:
        lengths = {k: len(v) for k, v in params.items()}
        if len(set(lengths.values())) > 1:
            raise ConfigError("zip", f"--zip needs lists of one length, got {lengths}")
        combos = list(zip(*params.values())) if keys else [()]
    else:
        combos = list(itertools.product(*params.values())) if keys else [()]
    points: list[Point] = []
    seen: set[str] = set()
    for seed in seeds:
        for combo in combos:
            values = dict(zip(keys, combo))
            cfg = base.replace(**values, seed=seed)
            try:
                validate(cfg)
            except ConfigError as e:
                where = ", ".join(f"{k}={v}" for k, v in values.items())
                raise ConfigError(e.key, f"{e.message} (sweep point {where}, seed {seed})") from None
            name = "-".join([f"{k}={_fmt(v)}" for k, v in values.items()] + [f"seed={seed}"])
            if name in seen:
                raise ConfigError("param", f"two sweep points would share the folder name {name!r}: "
                                  "remove repeated values")
            seen.add(name)
            points.append(Point(name, values, seed, cfg))
    owners: dict[str, str] = {}
    for p in points:
        for phase, key in shared_keys(p.config).items():
            if phase != "base" and not p.config.controls and phase != "teacher":
                continue
            owner = owners.setdefault(key, p.name)
            if owner != p.name and owner not in p.deps:
                p.deps.append(owner)
    return points


def spec_dict(base: RunConfig, params: dict[str, list], seeds: list[int], zip_: bool) -> dict:
    return {"base_config": base.to_dict(), "params": params, "seeds": seeds, "mode": "zip" if zip_ else "grid"}


# ------------------------------------------------------------------------------------------------
# One point (also what a pool process or a Ray task runs)


def run_point(config: dict, out: str, shared: str, threads: int | None = None, quiet: bool = True,
              *_deps: Any) -> dict:
    """Runs one point; never raises: returns ``{"status", "error", "seconds", "result"}``.

    ``_deps`` are the results of the points it waits for (Ray passes them to order the tasks)."""
    from ..train.loop import Interrupted

    t0 = time.perf_counter()
    try:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        if quiet:
            from ..progress import quiet_libraries

            quiet_libraries()
        from .run import run_experiment

        metrics = run_experiment(RunConfig(**config), out, resume=True, quiet=quiet, shared=shared)
        return {"status": "done", "error": None, "seconds": round(time.perf_counter() - t0, 1),
                "result": summary(metrics)}
    except (KeyboardInterrupt, Interrupted):  # the user stops the sweep: not a failing point
        raise
    except BaseException as e:  # noqa: BLE001 - a failing point is recorded and the sweep goes on
        text = " ".join(str(e).split()) or type(e).__name__
        return {"status": "failed", "error": f"{type(e).__name__}: {text}"[:500],
                "seconds": round(time.perf_counter() - t0, 1), "result": None}


def summary(metrics: dict) -> dict:
    """The few numbers of a point kept in sweep.json (the full record is the point's metrics.json)."""
    out = {arm: metrics[arm]["benchmark_accuracy"] for arm in RESULT_ARMS if arm in metrics}
    out["chance"] = metrics.get("chance")
    out["verdict"] = metrics.get("verdict")
    out["timings_s"] = metrics.get("timings_s")
    return out


# ------------------------------------------------------------------------------------------------
# The sweep


def preflight_points(points: list[Point], index: dict, *, quiet: bool, local: bool = True) -> None:
    """Loads the data and reads the models once per distinct data and model setting among the points
    still to run, before the sweep folder is written: a dataset that cannot be read (a hub that is
    unreachable, a malformed file) fails the sweep in seconds, not every point one by one. ``local``: the
    points run on this machine, so their devices must exist here (a Ray cluster's nodes are checked there)."""
    from ..device import runtime
    from .run import preflight

    done = {e["name"] for e in index["points"] if e["status"] == "done"}
    if local:
        for device, precision in {(p.config.device, p.config.precision) for p in points if p.name not in done}:
            runtime(device, precision)  # a CUDA device this machine lacks: one line, before anything is written
    seen: set[str] = set()
    for p in points:
        key = shared_keys(p.config)["base"] + repr(sorted((k, getattr(p.config, k)) for k in (
            "student_base", "student_layers", "student_init", "student_model", "data_size")))
        if p.name in done or key in seen:
            continue
        seen.add(key)
        preflight(p.config)


def _index_path(out: Path) -> Path:
    return out / "sweep.json"


def open_sweep(out: Path, spec: dict, points: list[Point], *, overwrite: bool = False) -> dict:
    """The sweep index: a new one, or the existing one when its specification is the same (resume);
    a folder holding another sweep (unless ``overwrite``: a new index), or a run, is refused."""
    path = _index_path(out)
    if path.exists() and not overwrite:
        try:
            old = read_json(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is not a readable sweep index ({e}); choose another --out") from None
        if old.get("kind") != KIND:
            raise ValueError(f"{path} is not a pylaundering sweep index; choose another --out")
        mine = {k: spec[k] for k in ("params", "seeds", "mode", "base_config")}
        theirs = {k: old.get(k) for k in mine}
        # a setting added by a later version takes its default in an older index; where the points run (device,
        # deterministic) may change between sessions: a sweep started on the CPU resumes on a GPU
        theirs["base_config"] = {**RunConfig().to_dict(), **(theirs["base_config"] or {})}
        for side in (mine, theirs):
            side["base_config"] = {k: v for k, v in side["base_config"].items() if k not in RUNTIME_FIELDS}
        if _jsonable(mine) != _jsonable(theirs):
            changed = [k for k in mine if _jsonable(mine[k]) != _jsonable(theirs[k])]
            if "base_config" in changed:
                bc_old, bc_new = theirs["base_config"] or {}, mine["base_config"]
                keys = sorted(k for k in set(bc_old) | set(bc_new) if bc_old.get(k) != bc_new.get(k))
                changed = [c for c in changed if c != "base_config"] + [f"base setting {k}" for k in keys[:5]]
            raise ValueError(f"{out} holds another sweep (different {', '.join(changed)}): pass --overwrite to replace "
                             "it, choose another --out, or repeat that sweep's settings to resume it")
        by_name = {p["name"]: p for p in old.get("points", [])}
    else:
        if (out / "config.json").exists() or (out / "metrics.json").exists():
            raise ValueError(f"{out} holds a run, not a sweep; choose another --out")
        by_name = {}
    index = {"schema_version": SWEEP_SCHEMA_VERSION, "kind": KIND, **spec, "points": []}
    for p in points:
        previous = by_name.get(p.name, {})
        done = previous.get("status") == "done" and (out / p.dir / "metrics.json").exists()
        index["points"].append({"name": p.name, "dir": p.dir, "params": p.params, "seed": p.seed,
                                "depends_on": p.deps, "status": "done" if done else "pending",
                                "error": None, "seconds": previous.get("seconds") if done else None,
                                "result": previous.get("result") if done else None})
    return index


def _jsonable(x: Any) -> Any:
    import json

    return json.loads(json.dumps(x, default=str))


def default_threads(jobs: int) -> int:
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // jobs)


def run_sweep(base: RunConfig, params: dict[str, list], seeds: list[int], out_dir: str | Path, *,
              zip_: bool = False, jobs: int = 1, threads: int | None = None, executor: str = "local",
              address: str | None = None, gpus_per_point: float = 0.0, quiet: bool = False,
              overwrite: bool = False) -> dict:
    """Plans, runs (skipping finished points) and indexes the sweep; returns the index.

    The sweep folder is locked from the end of the checks to the end of the sweep (``pylaundering.lock``):
    a second sweep on it is refused with one line naming the holder. ``overwrite``: what an earlier sweep
    wrote there (sweep.json, points/, shared/) is removed first, and every point runs afresh."""
    from ..lock import check_free, locked

    if executor not in ("local", "ray"):
        raise ConfigError("executor", f"expected local or ray, got {executor!r}")
    if jobs < 1:
        raise ConfigError("jobs", f"must be at least 1, got {jobs}")
    out = Path(out_dir)
    check_free(out, "sweep")
    points = plan(base, params, seeds, zip_=zip_)
    check_gpus(executor, gpus_per_point, points)
    spec = spec_dict(base, params, seeds, zip_)
    index = open_sweep(out, spec, points, overwrite=overwrite)
    preflight_points(points, index, quiet=quiet, local=executor == "local")
    with locked(out, what="sweep", wait=False):
        if overwrite:
            clear_sweep(out, base)
        index = open_sweep(out, spec, points)  # again, under the lock: another sweep may have run meanwhile
        return _run_index(out, index, points, executor=executor, jobs=jobs, threads=threads, address=address,
                          gpus_per_point=gpus_per_point, quiet=quiet)


def check_gpus(executor: str, gpus_per_point: float, points: list[Point]) -> None:
    """``--gpus-per-point``: a Ray request (a fraction lets small students share a GPU). Ray shows a task only the
    GPUs it requested (CUDA_VISIBLE_DEVICES), so a point that asks for CUDA needs a request, and a request is
    pointless for a point kept on the CPU; the local executor runs every point on this machine's devices."""
    import math

    if not math.isfinite(gpus_per_point) or gpus_per_point < 0:
        raise ConfigError("gpus_per_point", f"must be a number >= 0, got {gpus_per_point}")
    if executor != "ray":
        if gpus_per_point:
            raise ConfigError("gpus_per_point", "is a Ray request (--executor ray); the local executor runs the "
                              "points on this machine's --device")
        return
    devices = {p.config.device.strip().lower() for p in points}
    if gpus_per_point == 0 and any(d.startswith("cuda") for d in devices):
        raise ConfigError("gpus_per_point", "the points ask for a CUDA device, but Ray shows a task only the GPUs "
                          "it requests: give --gpus-per-point (1, or a fraction such as 0.25 to share a GPU)")
    if gpus_per_point > 0 and "cpu" in devices:
        raise ConfigError("gpus_per_point", "the points run on the CPU (device = cpu): drop --gpus-per-point or "
                          "use --device auto or cuda")


#: What a sweep writes into its folder (``--overwrite`` removes these, and nothing else).
SWEEP_OUTPUTS = ("sweep.json", "points", "shared")


def clear_sweep(out: Path, base: RunConfig) -> None:
    """Removes what an earlier sweep wrote into ``out``; refused when that would remove the base's data."""
    from ..phases.common import check_outputs, remove

    inputs = [Path(x) for x in (base.benchmark, base.train, base.reference) if x is not None and Path(x).exists()]
    remove(check_outputs([out / name for name in SWEEP_OUTPUTS], overwrite=True, inputs=inputs))


def _run_index(out: Path, index: dict, points: list[Point], *, executor: str, jobs: int, threads: int | None,
               address: str | None, gpus_per_point: float, quiet: bool) -> dict:
    """Runs the points still to run, under the sweep folder's lock."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(index, _index_path(out))
    entries = {e["name"]: e for e in index["points"]}
    todo = [p for p in points if entries[p.name]["status"] != "done"]
    adaptive = threads is None and executor == "local"
    threads = threads or default_threads(jobs)
    t0 = time.perf_counter()

    def record(name: str, res: dict) -> None:
        entries[name].update(res)
        write_json(index, _index_path(out))
        if not quiet:
            from ..progress import console

            e = entries[name]
            what = (f"student {100 * e['result']['student']:.1f}%" if e["status"] == "done" and e["result"]
                    else e.get("error"))
            console.print(f"[bold]{e['status']}[/bold] {name} ({e['seconds']} s): {what}", highlight=False,
                          soft_wrap=True)

    def started(name: str, status: str = "running") -> None:  # sweep.json shows what is under way
        entries[name]["status"] = status
        write_json(index, _index_path(out))
        if not quiet and (jobs > 1 or executor == "ray"):
            from ..progress import console

            console.print(f"{status} {name}", highlight=False, soft_wrap=True)

    skipped = len(points) - len(todo)
    if not quiet:
        from ..progress import console

        console.print(f"[bold cyan]==> sweep: {len(points)} points ({skipped} already done), executor {executor}, "
                      f"{jobs if executor == 'local' else 'ray'} job(s) x "
                      f"{'cores / points running' if adaptive and jobs > 1 else threads} thread(s) -> {out}",
                      highlight=False, soft_wrap=True)
    args = {p.name: (p.config.to_dict(), str(out / p.dir), str(out / "shared"), threads) for p in todo}
    try:
        _dispatch(executor, jobs, todo, args, record, started, address=address, threads=threads,
                  gpus=gpus_per_point, adaptive=adaptive, quiet=quiet)
    except BaseException:  # interrupted: what was under way is pending again (it resumes next time)
        for e in index["points"]:
            if e["status"] in ("running", "submitted"):
                e["status"] = "pending"
        write_json(index, _index_path(out))
        raise
    index["seconds"] = round(time.perf_counter() - t0, 1)
    index["sharing"] = sharing_summary(out, index)
    write_json(index, _index_path(out))
    return index


def _dispatch(executor, jobs, todo, args, record, started, *, address, threads, gpus, adaptive, quiet) -> None:
    if executor == "ray":
        _run_ray(todo, args, record, started, address=address, threads=threads, gpus=gpus, quiet=quiet)
    elif jobs == 1:
        for p in todo:
            if not quiet:
                from ..progress import console

                console.print(f"[bold cyan]==> point {p.name}", highlight=False)
            started(p.name)
            record(p.name, run_point(*args[p.name][:3], None, quiet))
    else:
        _run_pool(todo, args, record, started, jobs=jobs, adaptive=adaptive)


#: Seconds a stopped sweep gives its workers to write their checkpoints before killing them
STOP_GRACE_S = 30.0


@contextlib.contextmanager
def _stops_workers(pool):
    """SIGTERM to the sweep stops its points too. Without this the default action kills the parent alone, and its
    pool's workers, orphaned, go on training into the sweep folder: a later resume then races them. Here SIGTERM
    raises KeyboardInterrupt in the parent (as Ctrl-C, which the whole process group gets), and on the way out each
    worker still alive gets SIGTERM: its training loop writes a checkpoint and stops (train/loop.py)."""
    import signal

    try:
        old = signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread: signals cannot be caught here
        old = None
    try:
        yield
    except BaseException:
        procs = [p for p in (getattr(pool, "_processes", None) or {}).values() if p.is_alive()]
        for proc in procs:
            proc.terminate()
        # A worker that checkpointed goes back to wait for work, and one that died idle may have held the task
        # queue's lock, so waiting for the pool to drain can hang: stragglers are killed after a grace period (a
        # checkpoint is written by rename, so a kill mid-write leaves the previous one)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def _run_pool(todo: list[Point], args: dict, record, started, *, jobs: int, adaptive: bool = False) -> None:
    """A local process pool; a point is submitted once the points it waits for have finished.
    ``adaptive``: a point gets cores / (points running with it) threads when submitted, so the
    first point of a seed (which trains the shared teachers while the others wait) uses every core."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from ..train.loop import Interrupted

    pending = {p.name: p for p in todo}
    finished: set[str] = set()
    running = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool, _stops_workers(pool):
        while pending or running:
            ready = [p for p in pending.values() if all(d in finished or d not in {q.name for q in todo}
                                                         for d in p.deps)]
            batch = ready[: max(0, jobs - len(running))]
            for p in batch:
                config, out, shared, threads = args[p.name]
                if adaptive:
                    threads = default_threads(len(running) + len(batch))
                running[pool.submit(run_point, config, out, shared, threads, True)] = p.name
                started(p.name)
                del pending[p.name]
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                try:
                    res = fut.result()
                except (KeyboardInterrupt, Interrupted):  # a point stopped by a signal: stop the sweep
                    for other in running:
                        other.cancel()
                    raise
                except Exception as e:  # noqa: BLE001 - the worker process died
                    res = {"status": "failed", "error": f"{type(e).__name__}: {e}", "seconds": None, "result": None}
                record(name, res)
                finished.add(name)


def _run_ray(todo: list[Point], args: dict, record, started, *, address: str | None, threads: int, gpus: float,
             quiet: bool) -> None:
    """Each point a Ray task with its CPU (and GPU) request; a point's task takes the tasks of the
    points it waits for as arguments, so Ray starts it after them. The sweep folder must be on a
    filesystem every node sees."""
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray: pip install 'pylaundering[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        import logging

        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet, ignore_reinit_error=True,
                 logging_level=logging.WARNING if quiet else logging.INFO)
    try:
        task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(run_point)
        names = {p.name for p in todo}
        refs: dict[str, Any] = {}
        for p in todo:  # plan order: a point's dependencies come before it
            deps = [refs[d] for d in p.deps if d in names]
            refs[p.name] = task.remote(*args[p.name], True, *deps)
            started(p.name, "submitted")  # Ray starts it when its dependencies are done
        by_ref = {ref: name for name, ref in refs.items()}
        remaining = list(refs.values())
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1)
            for ref in ready:
                try:
                    res = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - the task's worker died
                    res = {"status": "failed", "error": f"{type(e).__name__}: {' '.join(str(e).split())}"[:500],
                           "seconds": None, "result": None}
                record(by_ref[ref], res)
    finally:
        if started_here:
            ray.shutdown()


def sharing_summary(out: Path, index: dict) -> dict:
    """How many points used each shared phase, how many times it was trained, and an estimate of
    the seconds sharing saved (the trained phase's time for every further point that reused it)."""
    timing_names = {"teacher": "placement: teacher on the benchmark",
                    "clean_teacher": "control: clean teacher on the legitimate set",
                    "ce_student": "control: cross-entropy-only student"}
    users: dict[str, list[str]] = {}
    cost: dict[str, float] = {}
    for e in index["points"]:
        path = out / e["dir"] / "metrics.json"
        if e["status"] != "done" or not path.exists():
            continue
        m = read_json(path)
        keys = (m.get("shared") or {}).get("keys") or {}
        for phase, key in keys.items():
            if phase == "base":  # built in a second, never worth counting
                continue
            users.setdefault(key, []).append(e["name"])
            t = (m.get("timings_s") or {}).get(timing_names.get(phase, ""), 0.0) or 0.0
            if phase == "teacher":  # its logits on the legitimate set are computed once too
                t += (m.get("timings_s") or {}).get("student_teacher_logits") or 0.0
            cost[key] = max(cost.get(key, 0.0), t)
    per_phase: dict[str, dict] = {}
    for key, names in users.items():
        phase = next(p for p in SHARED_PHASES if key.startswith(p + "-"))
        d = per_phase.setdefault(phase, {"trained": 0, "used_by_points": 0, "seconds_saved_estimate": 0.0})
        d["trained"] += 1
        d["used_by_points"] += len(names)
        d["seconds_saved_estimate"] = round(d["seconds_saved_estimate"] + cost[key] * (len(names) - 1), 1)
    return per_phase
