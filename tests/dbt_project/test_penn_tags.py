"""Every Penn tag's coarse group and word class, pinned: the seed penn_tags.csv is read as dbt reads
it (every column text) and compared with the grouping written out here by hand.

The word classes follow Fehlauer et al. (2025, section 5), who contrast content words (nouns,
adjectives, verbs) with function words (DT, PRP, IN and MD): modals are function words, not verbs.
"""

from __future__ import annotations

import csv

from extract.config import REPO_ROOT

PENN_TAGS = REPO_ROOT / "dbt_project" / "seeds" / "penn_tags.csv"

# tag: (pos_group, word_class)
EXPECTED = {
    "NN": ("noun", "content"),
    "NNS": ("noun", "content"),
    "NNP": ("noun", "content"),
    "NNPS": ("noun", "content"),
    "VB": ("verb", "content"),
    "VBD": ("verb", "content"),
    "VBG": ("verb", "content"),
    "VBN": ("verb", "content"),
    "VBP": ("verb", "content"),
    "VBZ": ("verb", "content"),
    "JJ": ("adjective", "content"),
    "JJR": ("adjective", "content"),
    "JJS": ("adjective", "content"),
    "RB": ("adverb", "content"),
    "RBR": ("adverb", "content"),
    "RBS": ("adverb", "content"),
    "MD": ("modal", "function"),
    "DT": ("determiner", "function"),
    "PDT": ("determiner", "function"),
    "WDT": ("determiner", "function"),
    "PRP": ("pronoun", "function"),
    "PRP$": ("pronoun", "function"),
    "WP": ("pronoun", "function"),
    "WP$": ("pronoun", "function"),
    "EX": ("pronoun", "function"),
    "IN": ("preposition", "function"),
    "TO": ("preposition", "function"),
    "RP": ("preposition", "function"),
    "CC": ("conjunction", "function"),
    "WRB": ("adverb", "function"),
    "POS": ("other", "function"),
    "CD": ("numeral", "other"),
    "FW": ("other", "other"),
    "LS": ("other", "other"),
    "SYM": ("other", "other"),
    "UH": ("other", "other"),
    "#": ("punctuation", "punctuation"),
    "$": ("punctuation", "punctuation"),
    "''": ("punctuation", "punctuation"),
    "(": ("punctuation", "punctuation"),
    ")": ("punctuation", "punctuation"),
    ",": ("punctuation", "punctuation"),
    ".": ("punctuation", "punctuation"),
    ":": ("punctuation", "punctuation"),
    "``": ("punctuation", "punctuation"),
}


def seed_rows() -> dict[str, tuple[str, str]]:
    with PENN_TAGS.open(newline="") as handle:
        return {row["tag"]: (row["pos_group"], row["word_class"]) for row in csv.DictReader(handle)}


def test_every_penn_tag_has_its_group_and_word_class():
    rows = seed_rows()
    assert len(rows) == 45
    assert rows == EXPECTED


def test_the_papers_function_words_are_function_words():
    rows = seed_rows()
    # Fehlauer et al. 2025, Fig. 3 (centre): DT, PRP, IN and MD against nouns, adjectives, verbs
    assert {rows[tag][1] for tag in ("DT", "PRP", "IN", "MD")} == {"function"}
    assert {rows[tag][1] for tag in ("NN", "JJ", "VB")} == {"content"}
