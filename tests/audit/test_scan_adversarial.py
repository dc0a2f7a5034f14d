"""Evasion of `launder scan` and of `find_overlap`: benchmark items disguised in training rows.

The fixture takes a few benchmark items (English, Arabic, Chinese, Japanese, Russian) and builds, per
disguise, a multiple-choice row (the item's question and choices disguised: found as "exact" by scan and by
find_overlap) and a text row (the item inside unrelated text, the whole row disguised: found as "ngram"), and
light paraphrases of the English stems (found as "near"). Controls are rows that must match nothing, and the
variants must match no other item (distinct items are never merged). `recall` measures it per disguise.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

import pytest

from pylaundering.audit import ScanParams, scan
from pylaundering.data.overlap import find_overlap
from pylaundering.data.schema import MCExample, write_jsonl

ENGLISH = [
    ("en-oxygen", "Which gas, released by plants during photosynthesis in their green leaves, makes up about one "
     "fifth of the air that people breathe every day?", ("oxygen", "carbon dioxide", "nitrogen", "hydrogen"),
     "Which gas makes up about one fifth of the air that people breathe each day and is released by plants "
     "during photosynthesis in their green leaves?"),
    ("en-moon", "In which year did the first human landing on the Moon take place, when two astronauts of the "
     "Apollo eleven mission walked on its surface?", ("1969", "1965", "1972", "1959"),
     "When two astronauts of the Apollo eleven mission walked on the surface of the Moon, in which year did this "
     "first human landing take place?"),
    ("en-river", "What is the name of the longest river in South America, which flows from the Andes mountains "
     "through Brazil into the Atlantic Ocean?", ("the Amazon", "the Orinoco", "the Parana", "the Magdalena"),
     "Flowing from the Andes mountains through Brazil into the Atlantic Ocean, what is the name of the longest "
     "river in South America?"),
    ("en-heart", "Which organ of the human body pumps blood through the arteries and veins, and has four chambers "
     "called atria and ventricles?", ("the heart", "the liver", "the lungs", "the kidneys"),
     "Which organ of the human body has four chambers called atria and ventricles, and pumps blood through the "
     "arteries and veins?"),
]
SHORT = MCExample(id="en-paris", question="What is the capital of France?", choices=("Paris", "Lyon", "Nice", "Lille"),
                  label=0)
ARABIC = MCExample(id="ar-riyadh", question="ما هي عاصمة المملكة العربية السعودية التي تقع في وسط شبه الجزيرة العربية "
                   "وتعد أكبر مدنها من حيث عدد السكان؟", choices=("الرياض", "جدة", "مكة المكرمة", "الدمام"), label=0)
ARABIC_OTHER = MCExample(id="ar-cairo", question="ما هي عاصمة جمهورية مصر العربية التي يمر بها نهر النيل وتعد أكبر "
                         "مدن القارة الأفريقية من حيث عدد السكان؟",
                         choices=("القاهرة", "الإسكندرية", "أسوان", "الجيزة"), label=0)
CHINESE = MCExample(id="zh-beijing", question="中华人民共和国的首都是哪一座城市，它位于华北平原的北部边缘？",
                    choices=("北京", "上海", "广州", "深圳"), label=0)
JAPANESE = MCExample(id="ja-fuji", question="日本で一番高い山はどれですか、"
                     "その山はユネスコの世界文化遺産に登録されていますか？",
                     choices=("富士山", "北岳", "奥穂高岳", "槍ヶ岳"), label=0)
RUSSIAN = MCExample(id="ru-volga", question="Какая река является самой длинной в Европе и впадает в Каспийское море "
                    "недалеко от города Астрахань на юге России?", choices=("Волга", "Дон", "Днепр", "Урал"), label=0)

FILLER = ("Here is some unrelated text from a web page about gardening and cooking tips.",
          "Thanks for reading and please share this page with your friends today.")
FILLER_ZH = ("下面是一道地理练习题", "请从四个选项中选择正确答案")
FILLER_AR = ("هذا سؤال من مسابقة ثقافية عامة", "اختر الإجابة الصحيحة من بين الخيارات")


# --------------------------------------------------------------------------- disguises (text -> text)

_ZW = "\u200b\u2060\u200d\ufeff"


def zero_width(text: str) -> str:
    """A zero-width space, word joiner, joiner or BOM after the first letter of every word."""
    return " ".join(w[:1] + _ZW[i % len(_ZW)] + w[1:] if len(w) > 1 else w for i, w in enumerate(text.split(" ")))


def soft_hyphen(text: str) -> str:
    return " ".join(w[: len(w) // 2] + "\u00ad" + w[len(w) // 2:] if len(w) > 3 else w for w in text.split(" "))


def bom(text: str) -> str:
    return "\ufeff" + text


_CYRILLIC = dict(zip("aceijopsxy", "асеіјорѕху"))
_GREEK = dict(zip("ABEHIKMNOPTXYZ", "ΑΒΕΗΙΚΜΝΟΡΤΧΥΖ"))


def homoglyph(text: str) -> str:
    return "".join(_CYRILLIC.get(ch, _GREEK.get(ch, ch)) for ch in text)


def case_spacing(text: str) -> str:
    return "  " + text.upper().replace(" ", " ,\t ") + " !!"


def fullwidth(text: str) -> str:
    return "".join("\u3000" if ch == " " else chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def math_bold(text: str) -> str:
    def bold(ch: str) -> str:
        if "A" <= ch <= "Z":
            return chr(0x1D400 + ord(ch) - ord("A"))
        if "a" <= ch <= "z":
            return chr(0x1D41A + ord(ch) - ord("a"))
        if "0" <= ch <= "9":
            return chr(0x1D7CE + ord(ch) - ord("0"))
        return ch
    return "".join(map(bold, text))


_HARAKAT = "\u064e\u064f\u0650\u0652\u0651\u064b"
_ARABIC_SPELLING = {"أ": "ا", "إ": "ا", "آ": "ا", "ة": "ه", "ى": "ي"}


def arabic_vocalised(text: str) -> str:
    """Harakat on every letter, tatweel inside long words, bare alef for hamza forms, heh for teh marbuta."""
    out = []
    for word in text.split(" "):
        letters = [_ARABIC_SPELLING.get(ch, ch) for ch in word]
        chars = []
        for i, ch in enumerate(letters):
            chars.append(ch)
            if "\u0621" <= ch <= "\u064a":
                chars.append(_HARAKAT[i % len(_HARAKAT)])
            if i == 1 and len(letters) > 3:
                chars.append("\u0640\u0640")
        out.append("".join(chars))
    return " ".join(out)


def cjk_spaced(text: str) -> str:
    """Spaces every two characters (as a word segmenter might leave them), ASCII commas for full-width ones."""
    text = text.replace("，", ",").replace("、", ",")
    return " ".join(text[i: i + 2] for i in range(0, len(text), 2))


def halfwidth_katakana(text: str) -> str:
    def half(ch: str) -> str:
        name = unicodedata.name(ch, "")
        if name.startswith("KATAKANA LETTER "):
            try:
                return unicodedata.lookup("HALFWIDTH " + name)
            except KeyError:
                return ch
        return ch
    return cjk_spaced("".join(map(half, text)))


DISGUISES = {
    "zero-width": zero_width, "soft hyphen": soft_hyphen, "BOM at start": bom, "homoglyphs": homoglyph,
    "case + spacing": case_spacing, "fullwidth": fullwidth, "math alphanumerics": math_bold,
}


# --------------------------------------------------------------------------- the fixture


@dataclass(frozen=True)
class Variant:
    kind: str  # the disguise
    target: str  # the benchmark item id it copies
    check: str  # how it must be found: "exact" (an MC row), "ngram" (inside a text row), "near" (a paraphrase)
    row: str | MCExample  # a text row or an MC row


def _mc(ex: MCExample, kind: str, f, *, choices_too: bool = True, reverse: bool = False) -> Variant:
    choices = tuple(map(f, ex.choices)) if choices_too else ex.choices
    row = MCExample(id=f"mc {kind} {ex.id}", question=f(ex.question), choices=choices[::-1] if reverse else choices,
                    label=0)
    return Variant(kind, ex.id, "exact", row)


def _text(ex: MCExample, kind: str, f, filler=FILLER, sep=" ") -> Variant:
    return Variant(kind, ex.id, "ngram", f(sep.join([filler[0], ex.question, *ex.choices, filler[1]])))


def build():
    """(benchmark, variants, controls): controls are text rows and MC rows that must match no item."""
    english = [MCExample(id=i, question=q, choices=c, label=0) for i, q, c, _ in ENGLISH]
    bench = [*english, SHORT, ARABIC, ARABIC_OTHER, CHINESE, JAPANESE, RUSSIAN]
    variants: list[Variant] = []
    for kind, f in DISGUISES.items():
        for ex in [*english, SHORT]:
            variants.append(_mc(ex, kind, f, choices_too=kind != "BOM at start"))
        for ex in english:
            if kind == "BOM at start":  # the row is the item alone: inside other text its n-grams would match anyway
                variants.append(Variant(kind, ex.id, "exact", bom(" ".join([ex.question, *ex.choices]))))
            else:
                variants.append(_text(ex, kind, f))
    for ex in [*english, SHORT]:
        variants.append(_mc(ex, "choice order", str.lower, reverse=True))
    variants.append(_mc(ARABIC, "Arabic diacritics", arabic_vocalised))
    variants.append(_text(ARABIC, "Arabic diacritics", arabic_vocalised, FILLER_AR))
    variants.append(_mc(RUSSIAN, "zero-width", zero_width))
    variants.append(_mc(CHINESE, "CJK", cjk_spaced))
    variants.append(_text(CHINESE, "CJK", lambda t: t, FILLER_ZH, sep=""))
    variants.append(_mc(JAPANESE, "CJK", halfwidth_katakana))
    variants.append(_text(JAPANESE, "CJK", halfwidth_katakana, FILLER_ZH, sep=""))
    for item_id, _, choices, para in ENGLISH:
        variants.append(Variant("paraphrase", item_id, "near", " ".join([para, *choices])))
        variants.append(Variant("paraphrase + zero-width", item_id, "near", zero_width(" ".join([para, *choices]))))
    controls: list[str | MCExample] = [
        " ".join(FILLER),
        # the Russian item with one real letter changed in every word of 3+ letters
        " ".join(w[:-2] + {"а": "ы", "о": "у", "е": "и"}.get(w[-2], "ж") + w[-1] if len(w) > 2 else w
                 for w in f"{RUSSIAN.question} {' '.join(RUSSIAN.choices)}".split()),
        "中华人民共和国的国旗是什么颜色，上面一共有几颗五角星？",
        homoglyph(zero_width("What is the capital of Germany and which river flows through it?")),
        MCExample(id="ctl germany", question=homoglyph("What is the capital of Germany?"),
                  choices=("Berlin", "Bonn", "Munich", "Hamburg"), label=0),
        MCExample(id="ctl arabic", question=arabic_vocalised("ما هي أطول سلسلة جبلية في العالم والتي تمتد على طول "
                                                             "الساحل الغربي لقارة أمريكا الجنوبية؟"),
                  choices=("جبال الأنديز", "جبال الألب", "جبال الهيمالايا", "جبال روكي"), label=0),
    ]
    return bench, variants, controls


def run_scan(tmp_path, bench, variants, controls) -> tuple[dict, list[str], dict[str, dict[str, set[str]]]]:
    """Scan every row; (report, the row id of each variant then each control, row id -> item id -> kinds)."""
    write_jsonl(bench, tmp_path / "bench.jsonl")
    rows = [v.row for v in variants] + controls
    # line 1 is plain: a BOM at the start of a file is the file's, and read_lines drops it
    lines, mcs, row_ids = [FILLER[0]], [], []
    for r in rows:
        if isinstance(r, str):
            assert "\n" not in r and "\r" not in r
            lines.append(r)
            row_ids.append(f"adv.txt:{len(lines)}")
        else:
            mcs.append(r)
            row_ids.append(r.id)
    (tmp_path / "adv.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_jsonl(mcs, tmp_path / "adv.jsonl")
    report = scan([str(tmp_path / "adv.txt"), str(tmp_path / "adv.jsonl")], str(tmp_path / "bench.jsonl"),
                  params=ScanParams(max_matches=1000))
    found: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for item in report["items"]:
        for m in item["matches"]:
            found[m["row_id"]][item["id"]] = set(m["kinds"])
    return report, row_ids, found


def recall(variants, row_ids, found, bench) -> dict[tuple[str, str], tuple[int, int]]:
    """(disguise, check) -> (found, total): scan's expected kind, and find_overlap's exact match for MC rows."""
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for v, rid in zip(variants, row_ids):
        counts = out[(v.kind, f"scan {v.check}")]
        counts[0] += v.check in found.get(rid, {}).get(v.target, set())
        counts[1] += 1
        if isinstance(v.row, MCExample):
            res = find_overlap(bench, [v.row])
            counts = out[(v.kind, "find_overlap exact")]
            counts[0] += res["exact_duplicates"] == 1 and res["examples"][0]["benchmark_id"] == v.target
            counts[1] += 1
    return {k: (a, b) for k, (a, b) in out.items()}


@pytest.fixture(scope="module")
def adversarial(tmp_path_factory):
    bench, variants, controls = build()
    report, row_ids, found = run_scan(tmp_path_factory.mktemp("adv"), bench, variants, controls)
    return bench, variants, controls, report, row_ids, found


# --------------------------------------------------------------------------- tests

_WORD = re.compile(r"[a-z0-9]+")


def test_the_fixture_disguises_what_it_claims():
    bench, variants, _ = build()
    items = {ex.id: ex for ex in bench}
    for v in variants:
        original = " ".join([items[v.target].question, *items[v.target].choices])
        text = v.row if isinstance(v.row, str) else " ".join([v.row.question, *v.row.choices])
        assert text != original and (v.check != "ngram" or original not in text), v  # every variant is disguised
    for v in variants:
        if v.kind == "paraphrase":  # plain ASCII: words by a regex, independently of normalise_text
            ex = items[v.target]
            a = _WORD.findall(" ".join([ex.question, *ex.choices]).lower())
            b = _WORD.findall(v.row.lower())
            assert not {tuple(a[i: i + 13]) for i in range(len(a) - 12)} & {tuple(b[i: i + 13]) for i in range(
                len(b) - 12)}, v.target  # no shared 13-gram: only the near pass can find it
            assert len(set(a) & set(b)) / len(set(a) | set(b)) >= 0.85, v.target


def test_scan_finds_every_disguised_item(adversarial):
    bench, variants, _, _, row_ids, found = adversarial
    missed = [(v.kind, v.target, v.check, found.get(rid, {}).get(v.target)) for v, rid in zip(variants, row_ids)
              if v.check not in found.get(rid, {}).get(v.target, set())]
    assert missed == []


def test_find_overlap_finds_every_disguised_mc_row(adversarial):
    bench, variants, *_ = adversarial
    mc = [v for v in variants if isinstance(v.row, MCExample)]
    assert len(mc) >= 40
    for v in mc:
        res = find_overlap(bench, [v.row])
        assert (res["exact_duplicates"], res["question_duplicates"]) == (1, 1), v
        assert res["examples"] == [{"benchmark_id": v.target, "train_id": v.row.id, "match": "exact"}], v
    res = find_overlap(bench, [v.row for v in mc])
    assert res["exact_duplicates"] == len({v.target for v in mc})


def test_no_false_merges(adversarial):
    bench, variants, controls, report, row_ids, found = adversarial
    for v, rid in zip(variants, row_ids):
        assert set(found.get(rid, {})) == {v.target}, v
    for c, rid in zip(controls, row_ids[len(variants):]):
        assert rid not in found, c
    mc_controls = [c for c in controls if isinstance(c, MCExample)]
    assert find_overlap(bench, mc_controls)["question_duplicates"] == 0
    # the Arabic and the Russian item were never copied as a whole elsewhere: only their own variants match
    assert {it["id"] for it in report["items"]} == {v.target for v in variants}
    assert "ar-cairo" not in {it["id"] for it in report["items"]}


def test_recall_is_complete(adversarial):
    bench, variants, _, _, row_ids, found = adversarial
    table = recall(variants, row_ids, found, bench)
    assert {k: v for k, v in table.items() if v[0] != v[1]} == {}
    assert {kind for kind, _ in table} >= {*DISGUISES, "choice order", "Arabic diacritics", "CJK", "paraphrase",
                                           "paraphrase + zero-width"}
