"""normalise_text against evasion: format characters, confusables, other scripts; and what it must keep apart.

Every expected value is written out by hand (the reference), never computed with normalise_text itself."""

from __future__ import annotations

import random
import string
import unicodedata

import pytest

from pylaundering.data.confusables import CONFUSABLES
from pylaundering.data.overlap import normalise_text

ZW = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u202e", "\ufe0f", "\u034f"]


@pytest.mark.parametrize("mark", ZW)
def test_invisible_characters_inside_words_are_removed(mark):
    assert normalise_text(f"ca{mark}pital of Fr{mark}ance") == "capital of france"
    assert normalise_text(f"{mark}What is it") == "what is it"  # a BOM (or any of them) at the start


def test_invisible_characters_between_a_letter_and_its_accent_do_not_block_composition():
    assert normalise_text("e\u200b\u0301t\u00e9") == normalise_text("\u00e9t\u00e9") == "\u00e9t\u00e9"


def test_homoglyphs_fold_to_latin():
    # Cyrillic а е о р с у х і ј ѕ and Greek capitals in place of the Latin letters
    assert normalise_text("\u0441\u043e\u0440\u0443 \u0430\u0445\u0435 \u0456\u0458\u0455") == "copy axe ijs"
    assert normalise_text("\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7") == (
        "abezhikmnoptyx")
    assert normalise_text("\U0001d40f\U0001d41a\U0001d42b\U0001d422\U0001d42c") == "paris"  # mathematical bold
    assert normalise_text("\uff30\uff41\uff52\uff49\uff53 \uff71") == "paris \u30a2"  # fullwidth, halfwidth kana


def test_confusables_table_is_injective_within_each_script():
    """Two words of one script that differ by a real letter must stay different after folding."""
    for script in ("CYRILLIC", "GREEK"):
        targets = [v for k, v in CONFUSABLES.items() if unicodedata.name(k).startswith(script)]
        assert len(targets) == len(set(targets)), script
    assert all(v in string.ascii_lowercase for v in CONFUSABLES.values())
    assert all(k == unicodedata.normalize("NFKC", k.casefold()) for k in CONFUSABLES)  # keys are what it sees


def test_russian_and_greek_words_differing_by_a_real_letter_stay_different():
    pairs = [("мир", "мор"), ("дом", "дым"), ("все", "всё"), ("сор", "сыр"), ("нос", "нож"), ("кот", "кит"),
             ("λόγος", "λόγοι"), ("μήλο", "μήλα")]
    for a, b in pairs:
        assert normalise_text(a) != normalise_text(b), (a, b)
    # documented false merge: a Cyrillic word spelt only with Latin look-alikes equals the Latin word
    assert normalise_text("сор") == "cop"


def test_arabic_diacritics_tatweel_and_letter_variants():
    plain = "\u0627\u0643\u0628\u0631 \u0645\u062f\u064a\u0646\u0647 \u0639\u0644\u064a"  # اكبر مدينه علي
    vocalised = ("\u0623\u064e\u0643\u0652\u0628\u064e\u0640\u0640\u0631\u064f "  # أَكْبَــرُ
                 "\u0645\u064e\u062f\u0650\u064a\u0646\u064e\u0629\u064c "  # مَدِينَةٌ
                 "\u0639\u064e\u0644\u064e\u0649\u0670")  # عَلَىٰ
    assert normalise_text(vocalised) == plain
    for alef in ("\u0623", "\u0625", "\u0622", "\u0671", "\u0627\u0654"):
        assert normalise_text(alef + "\u0644") == "\u0627\u0644"
    assert normalise_text("\u0628\u06d6\u062a") == "\u0628\u062a"  # a Quranic annotation mark
    assert normalise_text("\ufefb") == "\u0644\u0627"  # presentation form (NFKC)
    assert normalise_text("\u0628\u0627\u0628") != normalise_text("\u0628\u0648\u0628")  # real letters differ


def test_scripts_without_spaces_are_split_into_characters():
    assert normalise_text("東京は日本の首都です。") == "東 京 は 日 本 の 首 都 で す"
    assert normalise_text("東京 は日本") == normalise_text("東京は 日本") == "東 京 は 日 本"
    assert normalise_text("ｶﾀｶﾅ") == "カ タ カ ナ"  # halfwidth katakana (NFKC), then split
    assert normalise_text("用Python写") == "用 python 写"
    # Thai, Khmer: a base letter keeps its combining vowel and tone marks
    assert normalise_text("ที่นี่") == "ที่ นี่"
    assert normalise_text("\u1780\u17b6\u179a") == "\u1780\u17b6 \u179a"
    # scripts written with spaces are left as words: Hangul, Latin, Cyrillic
    assert normalise_text("한국어 문장") == "한국어 문장"


def test_unchanged_behaviour():
    assert normalise_text("  What   is\tthe CAPITAL\nof «France»?  ") == "what is the capital of france"
    assert normalise_text("2 + 2 = $4") == "2 + 2 = $4"
    assert normalise_text("Straße") == "strasse"
    assert normalise_text("naïve café") == "na\u00efve caf\u00e9"


def test_never_joins_across_whitespace():
    """normalise_text(text).split() is the concatenation of normalise_text(word).split() over text.split():
    the scanner's word cache relies on it; random text over the characters every rule touches."""
    rng = random.Random(5)
    alphabet = ("aZé\u0301 \t\n.,-'«»!\u00a0\u3000\u00a8\u2014x0+$" + "".join(ZW) + "\u0430\u0435\u0391\u03ac"
                "\u0623\u064e\u0640\u0629\u0649\u0654\u0670\u06d6" + "東京はカ\u3099ทีุ่\u17b6\u1780" + "한\u1100\u1161"
                + "\uff21\U0001d400\ufefb\u2474")
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        words = [w for part in text.split() for w in normalise_text(part).split()]
        assert normalise_text(text).split() == words, repr(text)
        assert normalise_text(text) == " ".join(words), repr(text)


def test_ascii_shortcut_equals_the_general_path():
    """ASCII text takes a shortcut; the same text with one non-ASCII letter appended takes the full path."""
    rng = random.Random(6)
    for _ in range(2000):
        text = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 30)))
        assert normalise_text(text + " \u00e9") == (normalise_text(text) + " \u00e9").strip(), repr(text)
