"""Part-of-speech features: words cut from the text, tagged by the real tagger, mapped to tokens."""

from __future__ import annotations

import string
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract import pipeline
from extract.inputs.eval_tokens import EVAL_TOKENS_SCHEMA
from extract.inputs.token_tags import (
    PENN_TAGS,
    TOKEN_POS_SCHEMA,
    FeatureError,
    align_tokens,
    previous_in_window,
    tag_document,
    token_pos_table,
    word_spans,
)
from extract.registry import suite_table_path

TRICKY = 'He said "it\'s fine" (really) -- the U.S. Army agreed.\n\nA well-known man, Mr. Smith, left.'

# "New York, the cat": hand-made words, so each alignment case can be counted by eye.
#  N e w _ Y o r k , _ t  h  e  _  c  a  t
#  0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
NEW_YORK = [
    (0, 3, "New", "NNP"),
    (4, 8, "York", "NNP"),
    (8, 9, ",", ","),
    (10, 13, "the", "DT"),
    (14, 17, "cat", "NN"),
]


@pytest.fixture(scope="module")
def nltk_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nltk_data")


def test_penn_tags_are_the_45_tags() -> None:
    assert len(PENN_TAGS) == 45
    assert {"NN", "DT", "IN", "PRP$", "WP$", "``", "''", "(", ")", "#", "$"} <= PENN_TAGS
    assert "-LRB-" not in PENN_TAGS


def test_word_spans_slice_exactly_to_the_words() -> None:
    words = word_spans(TRICKY)
    assert all(TRICKY[start:end] == word for start, end, word in words)
    assert [word for _, _, word in words] == [
        "He", "said", '"', "it", "'s", "fine", '"', "(", "really", ")", "--", "the", "U.S", ".",
        "Army", "agreed", ".", "A", "well-known", "man", ",", "Mr", ".", "Smith", ",", "left", ".",
    ]  # fmt: skip


def test_words_cover_every_non_whitespace_character_and_no_whitespace() -> None:
    # align_tokens relies on this: a token's characters under some word are its non-whitespace ones.
    covered = {i for start, end, _ in word_spans(TRICKY) for i in range(start, end)}
    assert covered == {i for i, char in enumerate(TRICKY) if not char.isspace()}


def test_tag_document_tags_quotes_and_brackets_as_penn_punctuation(nltk_data: Path) -> None:
    tagged = tag_document(TRICKY, nltk_data)
    assert [(start, end, word) for start, end, word, _ in tagged] == word_spans(TRICKY)
    tags = {word: tag for _, _, word, tag in tagged}
    # The raw '"' and '(' are unknown to the tagger; shown as `` and -LRB- they get their tags.
    assert [tag for _, _, word, tag in tagged if word == '"'] == ["``", "''"]
    assert (tags["("], tags[")"], tags["--"], tags["the"], tags["said"]) == ("(", ")", ":", "DT", "VBD")
    assert all(tag in PENN_TAGS for _, _, _, tag in tagged)


def test_tag_document_of_a_plain_sentence(nltk_data: Path) -> None:
    tagged = tag_document("The cat sat on the mat.", nltk_data)
    assert [(word, tag) for _, _, word, tag in tagged] == [
        ("The", "DT"), ("cat", "NN"), ("sat", "VBD"), ("on", "IN"), ("the", "DT"), ("mat", "NN"), (".", "."),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        ((0, 3), ("New", "NNP")),  # exactly a word
        ((0, 8), ("York", "NNP")),  # "New York": York holds 4 of its 7 non-space characters
        ((0, 9), (None, None)),  # "New York,": York holds 4 of 8, exactly half, no majority
        ((2, 5), (None, None)),  # "w Y": one character from each word
        ((0, 17), (None, None)),  # the whole text: no word holds a majority
        ((9, 13), ("the", "DT")),  # " the": the leading space does not count
        ((8, 9), (",", ",")),  # punctuation
        ((13, 14), (None, None)),  # whitespace only
        ((13, 13), (None, None)),  # empty
        ((8, 11), (None, None)),  # ", t": one character of "," and one of "the"
        ((8, 12), ("the", "DT")),  # ", th": "the" holds 2 of 3
    ],
)
def test_align_tokens_majority_of_non_whitespace_characters(span, expected) -> None:
    assert align_tokens([span], NEW_YORK) == [expected]


def test_align_tokens_gives_every_piece_of_a_split_word_its_tag() -> None:
    # " cat" as " c", "a", "t", and the tokens in no particular order.
    assert align_tokens([(15, 16), (13, 15), (16, 17)], NEW_YORK) == [("cat", "NN")] * 3


def test_align_tokens_drops_an_unknown_tag_but_keeps_the_word() -> None:
    words = [(0, 3, "foo", "-NONE-"), (4, 7, "bar", "NN")]
    assert align_tokens([(0, 3), (3, 7)], words) == [("foo", None), ("bar", "NN")]


def test_align_tokens_with_no_words_or_no_tokens() -> None:
    assert align_tokens([(0, 4)], []) == [(None, None)]
    assert align_tokens([], NEW_YORK) == []


def test_previous_in_window_resets_at_a_window_boundary_and_a_gap() -> None:
    values = ["DT", "NN", "VBD", "IN", "DT"]
    assert previous_in_window(values, [0, 1, 2, 3, 5], [0, 0, 1, 1, 1]) == [None, "DT", None, "VBD", None]


def _eval_tokens(rows: list[tuple[str, int, int, int, int]]) -> pa.Table:
    """eval_tokens rows from (doc_id, window_id, char_start, char_end, context_len), in position order."""
    return pa.table(
        {
            "eval_set": ["test"] * len(rows),
            "position": list(range(len(rows))),
            "doc_id": [row[0] for row in rows],
            "window_id": [row[1] for row in rows],
            "token_id": [0] * len(rows),
            "token_text": [""] * len(rows),
            "char_start": [row[2] for row in rows],
            "char_end": [row[3] for row in rows],
            "context_len": [row[4] for row in rows],
        },
        schema=EVAL_TOKENS_SCHEMA,
    )


def test_token_pos_table(nltk_data: Path) -> None:
    documents = {"a": "The cat sat on the mat.", "b": "The dog barked."}
    # Byte-level BPE style: leading spaces on the tokens; "mat" split in two; a window boundary
    # inside document a, and document b in a window of its own.
    tokens = _eval_tokens(
        [
            ("a", 0, 0, 3, 0), ("a", 0, 3, 7, 1), ("a", 0, 7, 11, 2), ("a", 0, 11, 14, 3),
            ("a", 1, 14, 18, 0), ("a", 1, 18, 20, 1), ("a", 1, 20, 22, 2), ("a", 1, 22, 23, 3),
            ("b", 2, 0, 3, 0), ("b", 2, 3, 7, 1),
        ]
    )  # fmt: skip
    table = token_pos_table(tokens.take([3, 0, 9, 1, 2, 4, 5, 6, 7, 8]), documents, nltk_data)
    assert table.schema == TOKEN_POS_SCHEMA
    rows = table.to_pydict()
    assert rows["position"] == list(range(10))
    assert rows["word"] == ["The", "cat", "sat", "on", "the", "mat", "mat", ".", "The", "dog"]
    assert rows["pos"] == ["DT", "NN", "VBD", "IN", "DT", "NN", "NN", ".", "DT", "NN"]
    assert rows["prev_pos"] == [None, "DT", "NN", "VBD", None, "DT", "NN", "NN", None, "DT"]


def test_token_pos_table_names_a_missing_document(nltk_data: Path) -> None:
    with pytest.raises(FeatureError, match="'b'"):
        token_pos_table(_eval_tokens([("a", 0, 0, 3, 0), ("b", 1, 0, 3, 0)]), {"a": "The cat."}, nltk_data)


def test_token_pos_table_refuses_offsets_outside_the_document(nltk_data: Path) -> None:
    with pytest.raises(FeatureError, match="outside document 'a'"):
        token_pos_table(_eval_tokens([("a", 0, 0, 30, 0)]), {"a": "The cat."}, nltk_data)


def test_build_token_pos_on_the_micro_eval_set(micro_settings) -> None:
    summary = pipeline.build_token_pos(micro_settings, "micro")
    lake = micro_settings.paths.lake
    table = pq.read_table(suite_table_path(lake, "token_pos", "micro"))
    tokens = pq.read_table(suite_table_path(lake, "eval_tokens", "micro")).sort_by("position")
    assert table.schema == TOKEN_POS_SCHEMA
    assert table.column("position").to_pylist() == tokens.column("position").to_pylist()
    assert summary["n_tokens"] == tokens.num_rows

    rows = table.to_pydict()
    tagged = [tag for tag in rows["pos"] if tag is not None]
    assert summary["n_tagged"] == len(tagged)
    assert summary["share_tagged"] > 0.7
    assert set(tagged) <= PENN_TAGS
    # Counted per word, not per token: the micro tokenizer (384 entries) cuts long words into many
    # tokens, so per token the nouns crowd out the short words ("the", "of") that DT and IN tag.
    words, tags = rows["word"], rows["pos"]
    per_word = Counter(tags[i] for i in range(len(tags)) if tags[i] and (i == 0 or words[i] != words[i - 1]))
    assert {"NN", "DT", "IN"} <= {tag for tag, _ in per_word.most_common(5)}

    # prev_pos is the previous token's pos inside a window and null at each window's start.
    context_len = tokens.column("context_len").to_pylist()
    for i, prev in enumerate(rows["prev_pos"]):
        assert prev == (rows["pos"][i - 1] if context_len[i] > 0 else None)

    # A tagged token's word holds most of its text: the word contains its first letter or digit.
    for text, word in zip(tokens.column("token_text").to_pylist(), rows["word"]):
        core = text.strip()
        if word is not None and core and core[0] in string.ascii_letters + string.digits:
            assert core[0] in word
