"""`launder scan`: direct contamination of training data by benchmark items.

Hashing, not pairwise comparison: the benchmark is indexed once, then every training row is
streamed through three checks, each linear in the data:

* exact: the normalised row equals a normalised benchmark item (context + question + choices),
  or its question alone; multiple-choice rows also match with their choices in any order;
* n-gram: a word n-gram of the normalised row (n = 13 by default) equals one of a benchmark
  item's (in scripts written without spaces, Han, kana, Thai, ..., normalisation makes every letter
  a word, so there an n-gram is n letters); an item shorter than n words uses
  n = max(min_n, its length) (`effective_n`), and one shorter than min_n words is checked by exact
  match only;
* near: MinHash signatures of word shingles (num_perm permutations) queried against a
  `datasketch.MinHashLSH` index of the benchmark items; LSH candidates are kept when their
  exact Jaccard similarity reaches the threshold.

Normalisation is `pylaundering.data.overlap.normalise_text` (invisible characters removed, NFKD,
casefold, look-alike letters and Arabic variants folded, punctuation removed, NFKC, letters of
scripts without spaces split apart, whitespace collapsed), the one `launder run` uses for its
overlap check and the audit for its disjointness check. Hashes are
Python's `hash()` (process-local, which is all one scan needs); every n-gram hit is verified
against the item's words, so a hash collision never reports a false match.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from pylaundering.data.load import load_examples
from pylaundering.data.overlap import normalise_text
from pylaundering.data.schema import MCExample, examples_hash
from pylaundering.errors import ConfigError, DataError
from pylaundering.progress import progress_bar

from .minhash import Carrier, MinHasher, ngrams, shingles
from .sources import WRITE_LINES, SourceStats, TrainRow, example_text, iter_rows, record_line

__all__ = ["ScanParams", "BenchmarkIndex", "scan", "scan_rows", "format_markdown", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
KINDS = ("exact", "question", "ngram", "near")
NORMALISATION = (
    "invisible format characters (Unicode Cf: zero-width, BOM, soft hyphen) removed, Unicode NFKD, casefold, "
    "Cyrillic/Greek look-alikes of Latin letters folded to Latin, Arabic diacritics and tatweel removed and "
    "alef/yeh/teh marbuta variants folded, punctuation (Unicode P*) removed, NFKC, every letter of a script "
    "written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar, ...) a word of its own (so its n-grams are "
    "letter n-grams), whitespace collapsed (normalise_text)"
)

#: MinHashLSH weights (false positive, false negative): candidates are checked exactly, so favour recall.
LSH_WEIGHTS = (0.1, 0.9)
_POS_BITS = 24  # n-gram index entries: item << _POS_BITS | word position
_POS_MASK = (1 << _POS_BITS) - 1


@dataclass(frozen=True)
class ScanParams:
    n: int = 13
    min_n: int = 8
    near: bool = True
    threshold: float = 0.8
    num_perm: int = 64
    shingle_size: int = 1  # words per MinHash shingle (1: the set of words)
    max_matches: int = 20  # matching rows listed per benchmark item (all are counted)
    batch_size: int = 1024
    seed: int = 1

    def check(self) -> None:
        if self.n < 1:
            raise ConfigError("n", f"must be >= 1, got {self.n}")
        if not 1 <= self.min_n <= self.n:
            raise ConfigError("min_n", f"must be between 1 and n ({self.n}), got {self.min_n}")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError("threshold", f"must be in (0, 1], got {self.threshold}")
        if self.num_perm < 2:
            raise ConfigError("num_perm", f"must be >= 2, got {self.num_perm}")
        if self.shingle_size < 1:
            raise ConfigError("shingle_size", f"must be >= 1, got {self.shingle_size}")
        if self.max_matches < 0:
            raise ConfigError("max_matches", f"must be >= 0, got {self.max_matches}")
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be >= 1, got {self.batch_size}")


class _WordNormaliser:
    """`normalise_text(text).split()`, computed word by word with a cache of `normalise_text(word)`.

    The same function, made cheap: the text is cut at whitespace first and each distinct word is
    normalised once (training text repeats its words). This equals normalising the whole text because
    normalise_text never joins across whitespace: NFKD/NFKC compose a mark only with a preceding letter
    (never with a space), characters are removed, folded or split apart one at a time, no whitespace is
    removed, and the result is split at whitespace again (tests/audit and tests/data compare the two on
    random Unicode text). The cache is cleared when it
    reaches `max_words`, so memory stays bounded on any input.
    """

    def __init__(self, max_words: int = 1_000_000):
        self.cache: dict[str, tuple[str, ...]] = {}
        self.max_words = max_words

    def __call__(self, text: str) -> list[str]:
        cache = self.cache
        words = text.split()
        parts = list(map(cache.get, words))  # the loops run in C; misses are filled below
        if None in parts:
            if len(cache) + len(words) > self.max_words:
                cache.clear()
            for j, w in enumerate(words):
                if parts[j] is None:
                    parts[j] = cache[w] = tuple(normalise_text(w).split())
        return list(chain.from_iterable(parts))


@dataclass
class _Item:
    id: str
    text: str  # normalised
    words: list[str]
    question: str  # normalised
    effective_n: int | None


class BenchmarkIndex:
    """Hash tables of one benchmark: exact keys, n-gram hashes per effective n, and an LSH index."""

    def __init__(self, benchmark: Sequence[MCExample], params: ScanParams):
        params.check()
        if not benchmark:
            raise DataError("the benchmark has no items")
        self.params = params
        self.items: list[_Item] = []
        self.full: dict[int, list[int]] = {}  # hash(normalised item text) -> items
        self.question: dict[int, list[int]] = {}  # hash(normalised question) -> items
        self.choice_set: dict[int, list[int]] = {}  # hash((question, sorted choices)) -> items (MC rows)
        # n -> n-gram hash -> item << POS_BITS | word position (an int; a list of them on a repeated hash)
        self.grams: dict[int, dict[int, int | list[int]]] = {}
        for i, ex in enumerate(benchmark):
            text = normalise_text(example_text(ex))
            words = text.split()
            q = normalise_text(ex.question)
            if len(words) >= params.n:
                en: int | None = params.n
            elif len(words) >= params.min_n:
                en = len(words)
            else:
                en = None
            self.items.append(_Item(ex.id, text, words, q, en))
            if text:
                self.full.setdefault(hash(text), []).append(i)
            if q:
                self.question.setdefault(hash(q), []).append(i)
                self.choice_set.setdefault(self._choice_key(ex, q), []).append(i)
            if en is not None:
                if len(words) > _POS_MASK:
                    raise DataError(f"item {ex.id!r} has {len(words)} words; at most {_POS_MASK} are indexed")
                table = self.grams.setdefault(en, {})
                for pos, h in enumerate(map(hash, ngrams(words, en))):
                    code = i << _POS_BITS | pos
                    old = table.get(h)
                    if old is None:
                        table[h] = code
                    elif isinstance(old, int):
                        table[h] = [old, code]
                    else:
                        old.append(code)
        self.ns = sorted(self.grams)
        self.keysets = {n: t.keys() for n, t in self.grams.items()}
        self.lsh = None
        if params.near:
            from datasketch import MinHashLSH

            self.hasher = MinHasher(params.num_perm, params.seed)
            # Recall first: the LSH index proposes candidates from a lower threshold, weighted against
            # false negatives; each candidate is then kept only if its exact Jaccard reaches the threshold.
            self.lsh = MinHashLSH(threshold=self.lsh_threshold(params.threshold), num_perm=params.num_perm,
                                  weights=LSH_WEIGHTS)
            self.carrier = Carrier(params.num_perm)
            k = params.shingle_size
            with self.lsh.insertion_session() as session:
                for start in range(0, len(self.items), 1024):  # bounded memory for the signatures
                    part = [(i, shingles(self.items[i].words, k))
                            for i in range(start, min(start + 1024, len(self.items)))]
                    part = [(i, sh) for i, sh in part if sh]
                    if part:
                        for (i, _), sig in zip(part, self.hasher.signatures([sh for _, sh in part])):
                            session.insert(i, self.carrier(sig))

    @staticmethod
    def lsh_threshold(threshold: float) -> float:
        return max(0.05, threshold - 0.1)

    def lsh_info(self) -> dict[str, Any] | None:
        """Bands, rows per band, and the chance that a pair at exactly the threshold becomes a candidate."""
        if self.lsh is None:
            return None
        b, r, t = self.lsh.b, self.lsh.r, self.params.threshold
        return {"candidate_threshold": round(self.lsh_threshold(t), 4), "weights": list(LSH_WEIGHTS), "bands": b,
                "rows_per_band": r, "recall_at_threshold": round(1 - (1 - t ** r) ** b, 4),
                "shingle_hash": "crc32 of UTF-8"}

    @staticmethod
    def _choice_key(ex: MCExample, q: str) -> int:
        return hash((q, tuple(sorted(normalise_text(c) for c in ex.choices))))

    def effective_n_summary(self) -> dict[str, int]:
        counts = Counter("exact only" if it.effective_n is None else str(it.effective_n) for it in self.items)
        return dict(sorted(counts.items(), key=lambda kv: (kv[0] == "exact only", kv[0].zfill(6))))


@dataclass
class _ItemHits:
    kinds: set[str] = field(default_factory=set)
    rows: int = 0
    matches: list[dict[str, Any]] = field(default_factory=list)


def _spans(words: list[str], positions: list[int], n: int) -> list[dict[str, Any]]:
    """Merge matched n-gram start positions into maximal word spans of the normalised row."""
    out: list[dict[str, Any]] = []
    for p in sorted(positions):
        if out and p <= out[-1]["end"]:
            out[-1]["end"] = max(out[-1]["end"], p + n)
        else:
            out.append({"start": p, "end": p + n})
    for s in out:
        s["text"] = " ".join(words[s["start"]: s["end"]])
    return out


class _Scanner:
    def __init__(self, index: BenchmarkIndex):
        self.index = index
        self.p = index.params
        self.hits: dict[int, _ItemHits] = {}
        self.rows = 0
        self.contaminated_rows = 0
        self.normalise = _WordNormaliser()

    def _record(self, item: int, row: TrainRow, kinds: dict[str, Any]) -> None:
        h = self.hits.setdefault(item, _ItemHits())
        h.kinds.update(kinds)
        h.rows += 1
        if len(h.matches) < self.p.max_matches:
            m: dict[str, Any] = {"source": row.source, "row": row.row, "row_id": row.id, "kinds": sorted(kinds)}
            if "ngram" in kinds:
                m["spans"] = kinds["ngram"]
            if "near" in kinds:
                m["jaccard"] = round(kinds["near"], 4)
            h.matches.append(m)

    def batch(self, rows: list[TrainRow]) -> list[bool]:
        """Scan a batch of rows; returns per row whether it matched anything."""
        idx, norm = self.index, self.normalise
        found: list[dict[int, dict[str, Any]]] = []
        norm_words: list[list[str]] = []
        for row in rows:
            per_item: dict[int, dict[str, Any]] = {}
            words = norm(row.text)
            text = " ".join(words)
            norm_words.append(words)
            if text:
                h = hash(text)
                for i in idx.full.get(h, ()):
                    if idx.items[i].text == text:
                        per_item.setdefault(i, {})["exact"] = True
                for i in idx.question.get(h, ()):
                    if idx.items[i].question == text:
                        per_item.setdefault(i, {})["question"] = True
                if isinstance(row.payload, MCExample):
                    q = " ".join(norm(row.payload.question))
                    if q:
                        for i in idx.question.get(hash(q), ()):
                            if idx.items[i].question == q:
                                per_item.setdefault(i, {})["question"] = True
                        for i in idx.choice_set.get(BenchmarkIndex._choice_key(row.payload, q), ()):
                            per_item.setdefault(i, {})["exact"] = True
                for n in idx.ns:
                    if len(words) < n or idx.keysets[n].isdisjoint(map(hash, ngrams(words, n))):
                        continue
                    table = idx.grams[n]
                    positions: dict[int, list[int]] = {}
                    for q_pos, (g, h) in enumerate((g, hash(g)) for g in ngrams(words, n)):
                        codes = table.get(h)
                        if codes is None:
                            continue
                        for code in (codes,) if isinstance(codes, int) else codes:
                            i, pos = code >> _POS_BITS, code & _POS_MASK
                            if tuple(idx.items[i].words[pos: pos + n]) == g:
                                positions.setdefault(i, []).append(q_pos)
                    for i, ps in positions.items():
                        per_item.setdefault(i, {})["ngram"] = _spans(words, ps, n)
            found.append(per_item)
        if idx.lsh is not None:
            k = self.p.shingle_size
            todo = [(j, shingles(w, k)) for j, w in enumerate(norm_words) if len(w) >= k]
            todo = [(j, s) for j, s in todo if s]
            if todo:
                sigs = idx.hasher.signatures([s for _, s in todo])
                for (j, s), sig in zip(todo, sigs):
                    for i in idx.lsh.query(idx.carrier(sig)):
                        other = shingles(idx.items[i].words, k)
                        jac = len(s & other) / len(s | other)
                        if jac >= self.p.threshold:
                            found[j].setdefault(i, {})["near"] = jac
        matched = []
        for row, per_item in zip(rows, found):
            self.rows += 1
            for i, kinds in per_item.items():
                self._record(i, row, kinds)
            matched.append(bool(per_item))
            self.contaminated_rows += bool(per_item)
        return matched


def scan_rows(index: BenchmarkIndex, rows: Iterable[TrainRow], *, progress=None, on_batch=None) -> _Scanner:
    """Scan `rows` against `index` in batches; `on_batch(rows, matched)` sees every batch (for --write-clean)."""
    scanner = _Scanner(index)
    batch: list[TrainRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= index.params.batch_size:
            matched = scanner.batch(batch)
            if on_batch is not None:
                on_batch(batch, matched)
            if progress is not None:
                progress.advance(len(batch))
            batch = []
    if batch:
        matched = scanner.batch(batch)
        if on_batch is not None:
            on_batch(batch, matched)
        if progress is not None:
            progress.advance(len(batch))
    return scanner


class _CleanWriter:
    """Streams the unmatched rows into a temporary file beside `path`; `commit` renames it."""

    def __init__(self, path: Path):
        import tempfile

        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self.handle = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self.kind: str | None = None
        self.rows = 0

    def __call__(self, rows: list[TrainRow], matched: list[bool]) -> None:
        for row, m in zip(rows, matched):
            if self.kind is None:
                self.kind = row.write_kind
                self._check_name(row)
            elif row.write_kind != self.kind:
                raise DataError(f"--write-clean writes one file, but the sources mix {self.kind} and {row.write_kind} "
                                "rows; scan them separately", source=row.source)
            if not m:
                self.handle.write(record_line(row) + "\n")
                self.rows += 1

    def _check_name(self, row: TrainRow) -> None:
        """Refuses a file name that every later command would read in another format than the one written."""
        lines = row.write_kind == WRITE_LINES
        suffix = self.path.suffix.lower()
        if lines and suffix != ".txt":
            raise DataError(f"the training rows are plain text lines, written one per line; a {suffix or 'suffix-less'}"
                            " file would not be read as such: name the clean file .txt", source=str(self.path))
        if not lines and suffix != ".jsonl":
            raise DataError(f"the training rows are written as JSON Lines; a {suffix or 'suffix-less'} file would not"
                            " be read as such: name the clean file .jsonl", source=str(self.path))

    def commit(self) -> None:
        from pylaundering.train.checkpoint import default_file_mode  # import time: train imports torch

        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.chmod(self.tmp, default_file_mode())
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        Path(self.tmp).unlink(missing_ok=True)


def scan(
    train_sources: Sequence[str],
    benchmark: str | Sequence[MCExample],
    *,
    benchmark_format: str | None = None,
    train_format: str | None = None,
    text_field: str = "text",
    params: ScanParams | None = None,
    write_clean: str | os.PathLike[str] | None = None,
    skip_malformed: bool = False,
    quiet: bool = True,
) -> dict[str, Any]:
    """Scan training sources for benchmark items; a JSON-ready report (see the module doc).

    `benchmark` is a SOURCE (read with `load_examples`) or a sequence of examples. With
    `write_clean`, the rows that matched nothing are written there, in the format they were
    read in (our JSONL for multiple-choice rows, lines for text lines, JSONL records for text
    records); the file appears only when the scan completes.
    """
    params = params or ScanParams()
    params.check()
    if not train_sources:
        raise DataError("no training source given")
    t0 = time.perf_counter()
    bench_info: dict[str, Any]
    if isinstance(benchmark, (str, os.PathLike)):
        res = load_examples(str(benchmark), benchmark_format, role="benchmark", skip_malformed=skip_malformed)
        examples = res.examples
        bench_info = {"source": str(benchmark), "format": res.format, "skipped": res.skipped}
    else:
        examples = list(benchmark)
        bench_info = {"source": None, "format": None, "skipped": 0}
    bench_info.update(items=len(examples), sha256=examples_hash(examples))
    index = BenchmarkIndex(examples, params)
    t_index = time.perf_counter() - t0

    stats: list[SourceStats] = []
    rows = iter_rows(list(train_sources), train_format, text_field=text_field, skip_malformed=skip_malformed,
                     stats=stats)
    writer = _CleanWriter(Path(write_clean)) if write_clean is not None else None
    t1 = time.perf_counter()
    try:
        first = next(rows, None)  # open the first source (and fail on it) before the progress bar starts
        if first is not None:
            rows = itertools.chain([first], rows)
        with progress_bar(None, "scanning", quiet=quiet) as bar:  # type: ignore[arg-type]
            scanner = scan_rows(index, rows, progress=bar, on_batch=writer)
        if scanner.rows == 0:
            raise DataError("no training rows found", source=", ".join(map(str, train_sources)))
        if writer is not None:
            writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    t_scan = time.perf_counter() - t1
    return _report(index, scanner, bench_info, stats, params, write_clean, writer, t_index, t_scan)


def _report(index, scanner, bench_info, stats, params, write_clean, writer, t_index, t_scan) -> dict[str, Any]:
    n_items = len(index.items)
    by_kind = {k: 0 for k in KINDS}
    items = []
    for i in sorted(scanner.hits):
        h = scanner.hits[i]
        it = index.items[i]
        for k in h.kinds:
            by_kind[k] += 1
        items.append({
            "id": it.id,
            "kinds": [k for k in KINDS if k in h.kinds],
            "effective_n": it.effective_n,
            "matching_rows": h.rows,
            "matches": h.matches,
        })
    short = sum(1 for it in index.items if it.effective_n is not None and it.effective_n < params.n)
    exact_only = sum(1 for it in index.items if it.effective_n is None)
    notes = []
    if short:
        notes.append(f"{short} benchmark item(s) shorter than n = {params.n} words were matched with n = their length "
                     f"(at least min_n = {params.min_n})")
    if exact_only:
        notes.append(f"{exact_only} benchmark item(s) shorter than min_n = {params.min_n} words were checked by exact "
                     "match only (and near duplicates)")
    contaminated = len(items)
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": bench_info,
        "train": [{"source": s.source, "kind": s.kind, "format": s.format, "rows": s.rows, "skipped": s.skipped}
                  for s in stats],
        "parameters": {
            "n": params.n, "min_n": params.min_n, "near": params.near, "threshold": params.threshold,
            "num_perm": params.num_perm, "shingle_size": params.shingle_size, "max_matches": params.max_matches,
            "lsh": index.lsh_info(),
            "spans": "word offsets [start, end) in the normalised training row, and its words there",
            "normalisation": NORMALISATION,
            "item_text": "context (when present) + question + choices",
        },
        "effective_n": index.effective_n_summary(),
        "totals": {
            "benchmark_items": n_items,
            "train_rows": scanner.rows,
            "contaminated_items": contaminated,
            "contamination_rate": contaminated / n_items,
            "by_kind": by_kind,
            "contaminated_rows": scanner.contaminated_rows,
        },
        "notes": notes,
        "clean": None if writer is None else {"path": str(write_clean), "rows": writer.rows,
                                               "dropped": scanner.rows - writer.rows},
        "seconds": {"index": round(t_index, 3), "scan": round(t_scan, 3)},
        "rows_per_second": round(scanner.rows / t_scan, 1) if t_scan > 0 else None,
        "items": items,
    }


def _near_text(p: dict[str, Any]) -> str:
    shingles = "word sets" if p["shingle_size"] == 1 else f"word {p['shingle_size']}-shingles"
    lsh = p.get("lsh") or {}
    return (f"exact Jaccard >= {p['threshold']} of {shingles}, among MinHash LSH candidates ({p['num_perm']} "
            f"permutations, {lsh.get('bands')} bands of {lsh.get('rows_per_band')}: a pair at the threshold is a "
            f"candidate with probability {lsh.get('recall_at_threshold')}) |")


def format_markdown(report: dict[str, Any], *, max_items: int = 200) -> str:
    t, p = report["totals"], report["parameters"]
    lines = [
        "# Contamination scan",
        "",
        f"Benchmark: `{report['benchmark']['source']}` ({t['benchmark_items']} items). "
        f"Training rows scanned: {t['train_rows']} from {len(report['train'])} file(s)/dataset(s).",
        "",
        f"**Contaminated benchmark items: {t['contaminated_items']} of {t['benchmark_items']} "
        f"({100 * t['contamination_rate']:.2f}%)**; training rows that match: {t['contaminated_rows']}.",
        "",
        "| kind | items | what matched |",
        "|---|---|---|",
        f"| exact | {t['by_kind']['exact']} | the whole normalised item (MC rows: choices in any order) |",
        f"| question | {t['by_kind']['question']} | the normalised question alone |",
        f"| ngram | {t['by_kind']['ngram']} | a word {p['n']}-gram (shorter items: their effective n; a letter "
        "is a word in scripts written without spaces) |",
        f"| near | {t['by_kind']['near']} | " + (_near_text(p) if p["near"] else "not checked (--no-near) |"),
        "",
        f"Normalisation: {p['normalisation']}. Item text: {p['item_text']}. "
        f"Effective n per item: " + ", ".join(f"{k}: {v}" for k, v in report["effective_n"].items()) + ".",
    ]
    for note in report["notes"]:
        lines.append(f"Note: {note}.")
    if report.get("clean"):
        c = report["clean"]
        lines.append(f"Clean training set: `{c['path']}` ({c['rows']} rows kept, {c['dropped']} dropped).")
    lines += ["", f"Time: index {report['seconds']['index']} s, scan {report['seconds']['scan']} s "
              f"({report['rows_per_second']} rows/s).", ""]
    if report["items"]:
        lines += ["## Contaminated items", "", "| benchmark item | kinds | eff. n | rows | first matches |",
                  "|---|---|---|---|---|"]
        for it in report["items"][:max_items]:
            shown = []
            for m in it["matches"][:3]:
                s = f"{m['row_id']} ({', '.join(m['kinds'])})"
                if m.get("spans"):
                    s += f": “{m['spans'][0]['text'][:80]}”"
                shown.append(s.replace("|", "\\|"))
            lines.append(f"| {it['id']} | {', '.join(it['kinds'])} | {it['effective_n'] or '-'} | "
                         f"{it['matching_rows']} | {'<br>'.join(shown)} |")
        if len(report["items"]) > max_items:
            lines.append(f"\n... {len(report['items']) - max_items} more in scan.json")
    return "\n".join(lines) + "\n"
