"""Letters that look like Latin ones, and Arabic spelling variants: folded by `overlap.normalise_text`.

A contamination scan must not be evaded by writing a benchmark item with look-alike letters (Cyrillic `о`
for Latin `o`) or with optional Arabic marks. The tables are small on purpose: only letters that are
commonly swapped, not Unicode's whole confusables list.

Keys are what normalise_text sees when it applies the tables: text after NFKD and casefold, so lower case
only (capital `Α`, `В`, `Н` arrive as `α`, `в`, `н`), and with accents split off (Cyrillic `ё` arrives as
`е` + diaeresis and leaves as Latin `ë`).

False merges, and why they are acceptable here: folding changes genuine Cyrillic and Greek text too, so a
Russian word spelt only with look-alikes (`сор`) equals the Latin word (`cop`), and a Greek letter used as
a symbol equals its look-alike (`µm` and `mm`). The same normaliser is applied to the benchmark and to the
training rows, and within each script the table is one-to-one (no two Cyrillic letters, and no two Greek
letters, fold to the same Latin letter), so two Russian or two Greek words that differ by a real letter
stay different.
"""

from __future__ import annotations

__all__ = ["ARABIC_FOLD", "ARABIC_REMOVED", "CONFUSABLES"]

#: Cyrillic and Greek letters (lower case) -> the Latin letter they look like (in either case).
CONFUSABLES: dict[str, str] = {
    # Cyrillic: look-alikes in lower case (а е о р с у х і ј ѕ) and, through casefold, in upper case (В К М Н Т)
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l",
    # Greek: the capitals Α Β Ε Ζ Η Ι Κ Μ Ν Ο Ρ Τ Υ Χ (through casefold) and the lower-case look-alikes
    "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "h", "ι": "i", "κ": "k", "μ": "m", "ν": "n", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "y", "χ": "x", "ϳ": "j",
}

#: Arabic marks that change neither the letters nor (for matching) the word: tatweel (U+0640), harakat
#: and other marks above/below (U+064B-U+065F, which include hamza above/below, so the hamza forms of
#: alef, waw and yeh fold to the bare letters), superscript alef (U+0670), Quranic annotation marks
#: (U+06D6-U+06ED).
ARABIC_REMOVED: tuple[tuple[int, int], ...] = ((0x0640, 0x0640), (0x064B, 0x065F), (0x0670, 0x0670),
                                              (0x06D6, 0x06ED))

#: Arabic letters written interchangeably: alef with hamza or madda, alef wasla -> alef; alef maqsura -> yeh;
#: teh marbuta -> heh.
ARABIC_FOLD: dict[str, str] = {"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"}
