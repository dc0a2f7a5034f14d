"""Sources: `name:subset:split`, dataset repository folders, role defaults, offline hub, bad encodings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pylaundering.data import hub, load_examples, parse_source
from pylaundering.errors import DataError

datasets = pytest.importorskip("datasets")
OFFLINE_REASON = hub.hub_offline_reason  # the cached function (tests may patch the name)

README = """---
configs:
- config_name: first
  data_files:
  - split: train
    path: first/train.jsonl
  - split: test
    path: first/test.jsonl
- config_name: second
  data_files:
  - split: train
    path: second/train.jsonl
  - split: test
    path: second/test.jsonl
---
# A dataset with two configs and two splits
"""


def rows(config: str, split: str, n: int = 2) -> list[dict]:
    return [
        {"id": f"{config}-{split}-{i}", "question": f"{config} {split} {i}?", "choices": ["a", "b"], "label": i % 2}
        for i in range(n)
    ]


def write_rows(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch):
    """datasets' Arrow cache and the hub cache live in tmp_path, not in the user's home."""
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache" / "datasets")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache" / "hub"))
    OFFLINE_REASON.cache_clear()
    yield
    OFFLINE_REASON.cache_clear()


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "myrepo"
    for config in ("first", "second"):
        for split in ("train", "test"):
            write_rows(root / config / f"{split}.jsonl", rows(config, split, 2 if split == "test" else 3))
    (root / "README.md").write_text(README, encoding="utf-8")
    return root


# --------------------------------------------------------------------------- parse_source


def test_parse_source(tmp_path):
    assert parse_source("cais/mmlu:all:test") == ("cais/mmlu", "all", "test")
    assert parse_source("allenai/ai2_arc:ARC-Challenge") == ("allenai/ai2_arc", "ARC-Challenge", None)
    assert parse_source("ehovy/race::validation") == ("ehovy/race", None, "validation")
    assert parse_source("cais/mmlu") == ("cais/mmlu", None, None)
    assert parse_source("hf://datasets/x/y") == ("hf://datasets/x/y", None, None)
    odd = tmp_path / "a:b:c"  # an existing path is never split
    odd.mkdir()
    assert parse_source(str(odd)) == (str(odd), None, None)
    assert parse_source(f"{tmp_path}/folder:cfg:split") == (f"{tmp_path}/folder", "cfg", "split")
    with pytest.raises(DataError, match="expected name"):
        parse_source("a:b:c:d")


# --------------------------------------------------------------------------- repository folders


def test_repo_folder_by_spec_args_and_roles(repo):
    result = load_examples(f"{repo}:second:test")
    assert [e.id for e in result.examples] == ["second-test-0", "second-test-1"]
    assert (result.format, result.subset, result.split) == ("pylaundering", "second", "test")

    explicit = load_examples(f"{repo}:second:test", subset="first", split="train")  # arguments win
    assert [e.id for e in explicit.examples] == ["first-train-0", "first-train-1", "first-train-2"]

    bench = load_examples(str(repo), subset="first", role="benchmark")
    assert bench.split == "test" and bench.examples[0].id == "first-test-0"
    train = load_examples(f"{repo}:second", role="train")
    assert train.split == "train" and len(train.examples) == 3 and train.examples[0].id == "second-train-0"


def test_repo_folder_names_what_exists(repo):
    with pytest.raises(DataError, match=r"no subset 'third'; available subsets: first, second"):
        load_examples(f"{repo}:third:test")
    with pytest.raises(DataError, match=r"no split 'dev'; available splits: train, test"):
        load_examples(f"{repo}:first:dev")
    with pytest.raises(DataError, match=r"pass a subset .*; available subsets: first, second"):
        load_examples(str(repo), role="benchmark")
    with pytest.raises(DataError, match=r"pass a split .*this dataset has \['test', 'train'\]"):
        load_examples(f"{repo}:first")


def test_standard_data_layout_with_parquet_and_role_defaults(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    root = tmp_path / "plainrepo"
    (root / "data").mkdir(parents=True)
    for split, n in (("train", 3), ("validation", 2)):
        table = pa.Table.from_pylist(
            [{"question": f"{split} {i}?", "choices": ["w", "x", "y", "z"], "answer": i % 4, "subject": "s"}
             for i in range(n)]
        )
        pq.write_table(table, root / "data" / f"{split}-00000-of-00001.parquet")
    train = load_examples(str(root), "mmlu", role="benchmark", split="validation")
    assert len(train.examples) == 2 and train.examples[0].id == "plainrepo/validation:1"
    # MMLU's training default is auxiliary_train; this folder has two other splits: an error naming them
    with pytest.raises(DataError,
                       match=r"no split 'auxiliary_train' \(the default for training data\); available splits"):
        load_examples(str(root), "mmlu", role="train")
    bench_only = tmp_path / "benchonly"
    (bench_only / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"question": "q?", "choices": ["a", "b"], "answer": 1}]),
                   bench_only / "data" / "dev-00000-of-00001.parquet")
    # the default (test) is missing, but the only split is used
    only = load_examples(str(bench_only), "mmlu", role="benchmark")
    assert only.split == "dev" and only.examples[0].label == 1


def test_plain_folder_keeps_old_behaviour_and_rejects_splits(tmp_path):
    folder = tmp_path / "plain"
    write_rows(folder / "a.jsonl", rows("a", "x"))
    (folder / "README.md").write_text("# no configs here\n", encoding="utf-8")
    result = load_examples(str(folder), role="benchmark")
    assert len(result.examples) == 2 and result.split is None and result.files == [str(folder / "a.jsonl")]
    with pytest.raises(DataError, match=r"split 'test' given, but this is a plain file or folder"):
        load_examples(f"{folder}::test")


# --------------------------------------------------------------------------- hub names: defaults


class FakeHub:
    def __init__(self, result):
        self.result = result
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result


@pytest.fixture
def online(monkeypatch):
    monkeypatch.setattr(hub, "hub_offline_reason", lambda: None)


MMLU_ROW = {"question": "q?", "choices": ["a", "b", "c", "d"], "answer": 1, "subject": "anatomy"}
MEDMCQA_ROW = {"question": "q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 2, "subject_name": "x"}


@pytest.mark.parametrize(
    "spec, fmt, role, row, expected",
    [
        ("cais/mmlu", None, "benchmark", MMLU_ROW, (("cais/mmlu", "all"), {"split": "test"})),
        ("cais/mmlu", None, "train", MMLU_ROW, (("cais/mmlu", "all"), {"split": "auxiliary_train"})),
        ("cais/mmlu:anatomy", None, "benchmark", MMLU_ROW, (("cais/mmlu", "anatomy"), {"split": "test"})),
        ("openlifescienceai/medmcqa", None, "benchmark", MEDMCQA_ROW,
         (("openlifescienceai/medmcqa", None), {"split": "validation"})),
        ("openlifescienceai/medmcqa", None, "train", MEDMCQA_ROW,
         (("openlifescienceai/medmcqa", None), {"split": "train"})),
        ("someone/mmlu-copy:x:dev", "mmlu", "benchmark", MMLU_ROW, (("someone/mmlu-copy", "x"), {"split": "dev"})),
    ],
)
def test_hub_role_defaults(monkeypatch, online, spec, fmt, role, row, expected):
    fake = FakeHub([row])
    monkeypatch.setattr(datasets, "load_dataset", fake)
    result = load_examples(spec, fmt, role=role)
    assert fake.calls == [expected]
    assert (result.subset, result.split) == (expected[0][1], expected[1]["split"])


def test_hub_unknown_split_names_the_available_ones(monkeypatch, online):
    def missing(*args, split=None, **kwargs):
        raise ValueError(f'Unknown split "{split}"')

    monkeypatch.setattr(datasets, "load_dataset", missing)
    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda name: ["all", "anatomy"])
    monkeypatch.setattr(datasets, "get_dataset_split_names", lambda name, subset: ["test", "dev"])
    with pytest.raises(DataError, match=r"no split 'validation'; available splits: test, dev of subset 'all'"):
        load_examples("cais/mmlu:all:validation")
    with pytest.raises(DataError, match=r"no subset 'nope'; available subsets: all, anatomy"):
        load_examples("cais/mmlu:nope:test")


# --------------------------------------------------------------------------- offline


def test_offline_hub_fails_fast_with_a_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def never(*args, **kwargs):
        raise AssertionError("load_dataset must not be called when offline")

    monkeypatch.setattr(datasets, "load_dataset", never)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_examples("cais/mmlu:all:test")
    assert time.perf_counter() - start < 2
    message = str(info.value)
    assert message.startswith("cais/mmlu: not a local file or folder, and the Hugging Face hub is unreachable")
    assert "HF_HUB_OFFLINE is set" in message and "local file or folder" in message and "mirror" in message


def test_offline_probe_is_cached(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://mirror.example:8443")
    probes = []

    def probe(host, port, timeout):
        probes.append((host, port))
        return False

    monkeypatch.setattr(hub, "_probe", probe)
    for _ in range(2):
        with pytest.raises(DataError, match=r"no connection to mirror.example:8443"):
            load_examples("ehovy/race")
    assert probes == [("mirror.example", 8443)]


def test_offline_but_cached_reads_in_offline_mode(monkeypatch, tmp_path):
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    (Path(constants.HF_HUB_CACHE) / "datasets--cais--mmlu").mkdir(parents=True)
    seen = []

    def fake(*args, **kwargs):
        seen.append((datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE))
        return [MMLU_ROW]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    before = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    assert len(load_examples("cais/mmlu", role="benchmark").examples) == 1
    assert seen == [(True, True)]
    assert (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE) == before


# --------------------------------------------------------------------------- encodings


def test_jsonl_not_utf8_names_file_and_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "a", "question": "q?", "choices": ["x", "y"], "label": 0})
    path.write_bytes(good.encode() + b"\n" + b'{"id": "b", "question": "\xff"}\n')
    with pytest.raises(DataError, match=rf"^{path}, row 2: not UTF-8 text: byte 0xff at column 26"):
        load_examples(str(path))
    result = load_examples(str(path), skip_malformed=True)
    assert result.skipped == 1 and [e.id for e in result.examples] == ["a"]
    first = tmp_path / "first.jsonl"
    first.write_bytes(b"\xff" + good.encode() + b"\n")
    with pytest.raises(DataError, match=rf"^{first}, row 1: not UTF-8 text: byte 0xff"):
        load_examples(str(first))


def test_csv_not_utf8_names_file_and_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"question,choices,label\n"
        b'"q1?","[\'a\', \'b\']",0\n'
        b'"multi\nline q2?","[\'a\', \'b\']",1\n'
        b'"q3 \xff?","[\'a\', \'b\']",1\n'
    )
    with pytest.raises(DataError, match=rf"^{path}, row 3: not UTF-8 text: byte 0xff at line 5"):
        load_examples(str(path), "csv")
    header = tmp_path / "header.csv"
    header.write_bytes(b"\xffquestion,choices,label\n")
    with pytest.raises(DataError, match=rf"^{header}: not UTF-8 text: byte 0xff at line 1"):
        load_examples(str(header), "csv")
    start_of_row = tmp_path / "start.csv"
    start_of_row.write_bytes(b"question,choices,label\n\xff,\"['a', 'b']\",0\n")
    with pytest.raises(DataError, match=rf"^{start_of_row}, row 1: not UTF-8"):
        load_examples(str(start_of_row), "csv")


def test_edited_local_dataset_folder_is_reread(tmp_path):
    """`datasets` caches a local folder by its path: an edited file must not be served stale."""
    import json as _json

    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "README.md").write_text("---\nconfigs:\n- config_name: main\n  data_files:\n  - split: test\n"
                                    "    path: data/test.jsonl\n---\n")
    rows = [{"id": f"q{i}", "question": f"Question {i}?", "choices": ["a", "b", "c"], "answer": 0} for i in range(3)]
    path = root / "data" / "test.jsonl"
    path.write_text("".join(_json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="label"):
        load_examples(f"{root}:main:test", "pylaundering")
    # the user renames the column; the next load must see it
    path.write_text("".join(_json.dumps({"label": 2, **{k: v for k, v in r.items() if k != "answer"}}) + "\n"
                            for r in rows))
    again = load_examples(f"{root}:main:test", "pylaundering")
    assert [e.label for e in again.examples] == [2, 2, 2]
