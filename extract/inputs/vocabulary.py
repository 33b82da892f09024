"""The text of every token id of a suite's tokenizer, so the warehouse can show what a model
predicted: the top-k ids of token_stats are mostly ids that never occur in the evaluation tokens.

Each id is decoded on its own (`tokenizer.decode([id])`), not spelled as the tokenizer stores it
(`convert_ids_to_tokens`): a byte-level BPE stores " the" as "Ġthe" and a newline as "Ċ", which a
reader of the report should not have to translate, and the decoded text is what eval_tokens'
token_text holds for the same token (a slice of the document). What decoding cannot show is kept
as the tokenizer gives it: a lone byte of a multi-byte character decodes to U+FFFD, and a WordPiece
continuation keeps its "##".
"""

from __future__ import annotations

import pyarrow as pa
from transformers import PreTrainedTokenizerBase

from extract.lake.tables import SUITE, LakeTable

VOCABULARY_SCHEMA = pa.schema([("token_id", pa.int32()), ("token_text", pa.string())])
VOCABULARY = LakeTable(
    "vocabulary", VOCABULARY_SCHEMA, SUITE, "Per suite, every token id of its tokenizer with its decoded text."
)


def vocabulary_table(tokenizer: PreTrainedTokenizerBase) -> pa.Table:
    """One row per id of the tokenizer (added tokens included), in id order, with its text."""
    token_ids = list(range(len(tokenizer)))
    texts = tokenizer.batch_decode(
        [[token_id] for token_id in token_ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    return pa.table({"token_id": token_ids, "token_text": texts}, schema=VOCABULARY_SCHEMA)
