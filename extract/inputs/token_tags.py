"""Part-of-speech features of the evaluation tokens: the Penn tag of the word each token is part of.

The paper conditions convergence on the part of speech of the target token and of the token
before it. Tags belong to words and the models predict subword tokens, so each document is cut
into words and tagged once, and each token then takes the word that holds the majority of its
non-whitespace characters (or none, and so no tag, when no word does).

Words come from NLTK's untrained `PunktSentenceTokenizer` and `TreebankWordTokenizer`, both
span-based so every word is an exact slice of the text: `nltk.word_tokenize` would need the
`punkt_tab` data, which cannot be had offline. The untrained Punkt model knows no
abbreviations, so it also ends a sentence after "Mr." or "U.S."; that costs a little tagging
context at those points but moves no word boundary.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
from nltk.tokenize import TreebankWordTokenizer
from nltk.tokenize.punkt import PunktSentenceTokenizer

from extract.inputs.penn_tagger import pos_tag
from extract.lake.tables import SUITE, LakeTable

# The Penn Treebank tags as NLTK documents them (nltk.help.upenn_tagset): 36 word tags and 9
# punctuation tags. Anything else the tagger might say counts as unknown.
PENN_TAGS: frozenset[str] = frozenset(
    {
        "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNS", "NNP",
        "NNPS", "PDT", "POS", "PRP", "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB",
        "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB",
        "#", "$", "''", "(", ")", ",", ".", ":", "``",
    }
)  # fmt: skip

# The installed tagger (TextBlob's weights, trained on the WSJ treebank's .mrg files) names the
# bracket tags -LRB- / -RRB-, where NLTK's own tagger says ( / ). One spelling in the lake, so a
# query does not depend on which tagger build made it.
_CANONICAL_TAGS = {"-LRB-": "(", "-RRB-": ")"}

# Treebank's tokenizer spells quotes `` / '' and brackets -LRB- ... -RCB-, the forms the tagger
# was trained on; it has only seen round brackets, so square and curly ones are shown as those.
_TAGGER_FORMS = {"-LSB-": "-LRB-", "-LCB-": "-LRB-", "-RSB-": "-RRB-", "-RCB-": "-RRB-"}

_SENTENCES = PunktSentenceTokenizer()
_WORDS = TreebankWordTokenizer()

Word = tuple[int, int, str]
TaggedWord = tuple[int, int, str, str]

TOKEN_POS_SCHEMA = pa.schema(
    [
        ("eval_set", pa.string()),
        ("position", pa.int32()),
        ("word", pa.string()),
        ("pos", pa.string()),
        ("prev_pos", pa.string()),
    ]
)
TOKEN_POS = LakeTable(
    "token_pos",
    TOKEN_POS_SCHEMA,
    SUITE,
    "Per suite: the Penn tag of each evaluation token's word and of the token before it.",
)


class FeatureError(ValueError):
    """The inputs to a feature table do not fit together; the message says how."""


def _sentences(text: str) -> Iterator[tuple[list[Word], list[str]]]:
    """Per sentence: its words as (start, end, word) spans of `text`, and the forms to tag.

    The forms are what Treebank's tokenizer makes of each word ("``" for an opening double
    quote, "-LRB-" for "("): a raw '"' or '(' is unknown to the tagger, which would then guess a
    tag for it and let that guess mislead the tags of its neighbours.
    """
    for sentence_start, sentence_end in _SENTENCES.span_tokenize(text):
        sentence = text[sentence_start:sentence_end]
        spans = list(_WORDS.span_tokenize(sentence))
        if not spans:
            continue
        forms = _WORDS.tokenize(sentence, convert_parentheses=True)
        # span_tokenize aligns exactly these tokens, one for one; should a future NLTK differ,
        # tagging the raw words is the safe fallback.
        if len(forms) != len(spans):
            forms = [sentence[start:end] for start, end in spans]
        words = [(sentence_start + start, sentence_start + end, sentence[start:end]) for start, end in spans]
        yield words, [_TAGGER_FORMS.get(form, form) for form in forms]


def word_spans(text: str) -> list[Word]:
    """(start, end, word) for every word of `text`, in order; `text[start:end] == word`."""
    return [word for words, _ in _sentences(text) for word in words]


def tag_document(text: str, nltk_data_dir: Path) -> list[TaggedWord]:
    """(start, end, word, tag) for every word of `text`, tagged a sentence at a time."""
    tagged: list[TaggedWord] = []
    for words, forms in _sentences(text):
        tags = [tag for _, tag in pos_tag(forms, nltk_data_dir)]
        tagged.extend((start, end, word, _CANONICAL_TAGS.get(tag, tag)) for (start, end, word), tag in zip(words, tags))
    return tagged


def align_tokens(
    token_spans: Sequence[tuple[int, int]], tagged_words: Sequence[TaggedWord]
) -> list[tuple[str | None, str | None]]:
    """(word, tag) for each token span: the word covering more than half of the token's
    non-whitespace characters, and its tag when that is a Penn tag; (None, None) when no word
    holds a majority.

    `tagged_words` must be sorted and disjoint, as `tag_document` gives them. Its words cover
    every non-whitespace character of the text and no whitespace, so the characters of a token
    that some word covers are exactly its non-whitespace ones: a leading space never counts,
    and a whitespace-only token has none. Exactly half is not a majority: such a token sits on
    a word boundary and belongs to neither word.
    """
    starts = [word[0] for word in tagged_words]
    ends = [word[1] for word in tagged_words]
    aligned: list[tuple[str | None, str | None]] = []
    for token_start, token_end in token_spans:
        # Words are disjoint and sorted, so their ends are sorted too: the first word that can
        # overlap the token is the first one ending after the token starts.
        index = bisect_right(ends, token_start)
        covered, best, best_index = 0, 0, -1
        while index < len(tagged_words) and starts[index] < token_end:
            overlap = min(ends[index], token_end) - max(starts[index], token_start)
            if overlap > 0:
                covered += overlap
                if overlap > best:
                    best, best_index = overlap, index
            index += 1
        if 2 * best > covered:
            _, _, word, tag = tagged_words[best_index]
            aligned.append((word, tag if tag in PENN_TAGS else None))
        else:
            aligned.append((None, None))
    return aligned


def previous_in_window(
    values: Sequence[str | None], positions: Sequence[int], window_ids: Sequence[int]
) -> list[str | None]:
    """For each row, the value of the token at position - 1 when that token is in the same
    window, else None. Rows must be in position order.

    A window is fed to the model on its own, so the token before a window's first one was
    never part of its context.
    """
    return [
        values[i - 1] if i > 0 and positions[i - 1] == positions[i] - 1 and window_ids[i - 1] == window_ids[i] else None
        for i in range(len(values))
    ]


def token_pos_table(eval_tokens: pa.Table, documents: dict[str, str], nltk_data_dir: Path) -> pa.Table:
    """The token_pos lake table: eval_set, position, word, pos, prev_pos, in position order.

    `eval_tokens` is the eval_tokens lake table (character offsets index into the document's
    text); `documents` maps each doc_id to that text. Each document is tagged once.
    """
    rows = (
        eval_tokens.sort_by("position")
        .select(["eval_set", "position", "doc_id", "window_id", "char_start", "char_end"])
        .to_pydict()
    )
    n_rows = len(rows["position"])
    if len(set(rows["position"])) != n_rows:
        raise FeatureError("eval_tokens has repeated positions: each position must be one token")

    by_document: dict[str, list[int]] = {}
    for row, doc_id in enumerate(rows["doc_id"]):
        by_document.setdefault(doc_id, []).append(row)
    missing = sorted(set(by_document) - set(documents))
    if missing:
        raise FeatureError(f"eval_tokens names documents that are not in eval_documents: {missing[:5]}")

    words: list[str | None] = [None] * n_rows
    tags: list[str | None] = [None] * n_rows
    for doc_id, doc_rows in by_document.items():
        text = documents[doc_id]
        spans = [(rows["char_start"][row], rows["char_end"][row]) for row in doc_rows]
        if any(start < 0 or end > len(text) or start > end for start, end in spans):
            raise FeatureError(f"eval_tokens has character offsets outside document {doc_id!r}")
        for row, (word, tag) in zip(doc_rows, align_tokens(spans, tag_document(text, nltk_data_dir))):
            words[row], tags[row] = word, tag

    return pa.table(
        {
            "eval_set": rows["eval_set"],
            "position": rows["position"],
            "word": words,
            "pos": tags,
            "prev_pos": previous_in_window(tags, rows["position"], rows["window_id"]),
        },
        schema=TOKEN_POS_SCHEMA,
    )
