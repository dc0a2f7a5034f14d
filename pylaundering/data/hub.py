"""Hub datasets and dataset repository folders: whether the hub is reachable (probed once), offline
reads of cached datasets, and one split's rows via `datasets.load_dataset` with errors naming what exists."""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import DataError
from .conventions import class_label_names
from .readers import Stream
from .registry import READABLE, Adapter, hub_subset

# `datasets` and `huggingface_hub` are imported inside the functions that use them: they are slow to
# import, and reading local files never needs them.

#: Seconds the one connection probe may take before the hub counts as unreachable.
PROBE_TIMEOUT = 2.0
_TRUE = {"1", "on", "yes", "true"}


def _probe(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` (DNS included)."""
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # getaddrinfo ignores socket timeouts, so the whole attempt runs in a thread we stop waiting for.
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


@functools.lru_cache(maxsize=1)
def hub_offline_reason() -> str | None:
    """Why the Hugging Face hub cannot be reached, or None when it can; decided once per process.

    Offline when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set, or when one TCP
    connection to the hub (HF_ENDPOINT, or through HTTPS_PROXY when set) does not open
    within PROBE_TIMEOUT seconds. `hub_offline_reason.cache_clear()` forgets the answer.
    """
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlsplit(proxy if proxy and "://" in proxy else endpoint)
    host = target.hostname or "huggingface.co"
    port = target.port or (80 if target.scheme == "http" else 443)
    if _probe(host, port, PROBE_TIMEOUT):
        return None
    return f"no connection to {host}:{port} within {PROBE_TIMEOUT:g} s"


def _cached_on_disk(name: str) -> bool:
    """Whether `datasets` may find the hub dataset `name` in its local caches."""
    try:
        import datasets.config
        from huggingface_hub import constants
    except ImportError:
        return False
    candidates = [
        Path(constants.HF_HUB_CACHE) / ("datasets--" + name.replace("/", "--")),
        Path(datasets.config.HF_DATASETS_CACHE) / name.replace("/", "___"),
    ]
    return any(p.exists() or p.with_name(p.name.lower()).exists() for p in candidates)


@contextmanager
def _hub_mode(name: str) -> Iterator[None]:
    """Fail at once when the hub is unreachable, unless `datasets` has the dataset cached.

    A cached dataset is read in offline mode, so `datasets` does not spend ~30 s
    retrying the network first.
    """
    reason = hub_offline_reason()
    if reason is None:
        yield
        return
    if not _cached_on_disk(name):
        raise DataError(
            f"not a local file or folder, and the Hugging Face hub is unreachable ({reason});"
            " pass a local file or folder (a downloaded dataset repository works), or set"
            " HF_ENDPOINT to a reachable mirror",
            source=name,
        )
    import datasets.config
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No "Generating train split" progress bars while loading (callers draw their own)."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def is_dataset_repo(path: Path) -> bool:
    """A folder laid out as a Hugging Face dataset repository (read with `datasets`).

    Either a README.md whose YAML header has `configs:`, or a `data/` folder of data
    files (the standard `data/<split>-*.parquet` layout). Other folders are plain.
    """
    if not path.is_dir():
        return False
    readme = path / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        header = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, re.S)
        if header and re.search(r"^configs\s*:", header.group(1), re.M):
            return True
    data = path / "data"
    return data.is_dir() and any(p.is_file() and p.suffix.lower() in READABLE for p in data.rglob("*"))


def _available(name: str, subset: str | None) -> tuple[list[str] | None, list[str] | None]:
    """(subsets, splits of `subset`) of a dataset, each None when it cannot be listed."""
    import datasets

    try:
        configs = list(datasets.get_dataset_config_names(name))
    except Exception:  # noqa: BLE001 - only used to improve an error message
        configs = None
    if subset is None and configs and len(configs) == 1:
        subset = configs[0]
    try:
        splits = list(datasets.get_dataset_split_names(name, subset))
    except Exception:  # noqa: BLE001 - likewise
        splits = None
    return configs, splits


def _private_cache_dir() -> str:
    """A temporary `datasets` cache folder, removed when the process exits."""
    path = tempfile.mkdtemp(prefix="pylaundering-datasets-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def dataset_stream(
    name: str,
    subset: str | None,
    split: str | None,
    *,
    role: str | None,
    adapter: Adapter,
    local: bool,
) -> tuple[Stream, str | None, str]:
    """Rows of one split via `datasets.load_dataset` (a hub name or a repository folder).

    Returns the stream, the subset and the split read. With no split, the format's
    default for `role` is used; when a dataset lacks it but has a single split, that one.
    """
    import datasets  # imported lazily: it is slow to import and unneeded for local files

    where = "the dataset folder" if local else "from the Hugging Face hub"
    if subset is None and not local:
        subset = hub_subset(name)
    explicit = split is not None
    if split is None and role is not None:
        split = adapter.default_splits[role]
    # A local folder is read into a private, temporary cache every time: `datasets` keys its cache
    # on the folder, not on the files' contents, and served an edited file's old rows and schema
    # (seen: a renamed column still missing; force_redownload then failed on the stale schema).
    fresh = {"cache_dir": _private_cache_dir()} if local else {}
    with _quiet_datasets(), (_no_hub() if local else _hub_mode(name)):
        try:
            loaded = datasets.load_dataset(name, subset, split=split, **fresh)
        except Exception as err:  # noqa: BLE001 - re-raised with the hint a user needs
            retry = _diagnose(err, name, subset, split, explicit=explicit, local=local, role=role)
            if retry is None:
                raise DataError(
                    f"could not load {where} ({type(err).__name__}: {err})"
                    + ("" if local else "; if you meant a local path, it does not exist"),
                    source=name,
                ) from err
            split = retry
            loaded = datasets.load_dataset(name, subset, split=split, **fresh)
    if split is None:
        if len(loaded) != 1:
            raise DataError(
                f"pass a split (name:subset:split, split=, or a role); this dataset has {sorted(loaded)}",
                source=name,
            )
        [(split, loaded)] = loaded.items()
    parts = [p for p in (subset, split) if p]
    stem = Path(name).name if local else name.rsplit("/", 1)[-1]
    stream = Stream(
        label=f"{name} ({', '.join(parts)})",
        id_prefix="/".join([stem, *parts]),
        group=subset,
        rows=enumerate(loaded, 1),
        class_labels=class_label_names(getattr(loaded, "features", None)),  # the dataset's declared label sets
    )
    return stream, subset, split


@contextmanager
def _no_hub() -> Iterator[None]:
    yield


def _diagnose(
    err: Exception,
    name: str,
    subset: str | None,
    split: str | None,
    *,
    explicit: bool,
    local: bool,
    role: str | None,
) -> str | None:
    """For a failed load: raise a DataError naming what exists, or return a split to retry with.

    Only local folders, or hub errors that are ValueErrors (which is how `datasets`
    reports unknown configs and splits), are examined: listing a hub dataset needs the
    network that may just have failed.
    """
    if not (local or isinstance(err, ValueError)):
        return None
    configs, splits = _available(name, subset)
    if configs and (subset not in configs if subset is not None else len(configs) > 1):
        what = f"no subset {subset!r}" if subset is not None else "pass a subset (name:subset:split or subset=)"
        raise DataError(f"{what}; available subsets: {', '.join(configs)}", source=name) from err
    if splits and split is not None and split not in splits:
        if not explicit and len(splits) == 1:
            return splits[0]
        why = "" if explicit else f" (the default for {'a benchmark' if role == 'benchmark' else 'training data'})"
        raise DataError(
            f"no split {split!r}{why}; available splits: {', '.join(splits)}"
            + (f" of subset {subset!r}" if subset else ""),
            source=name,
        ) from err
    return None


def repo_files(path: Path) -> list[Path]:
    """The data files of a dataset repository folder (for format inference)."""
    return sorted(
        p for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in READABLE and not any(part.startswith(".") for part in p.parts)
    )
