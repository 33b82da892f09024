import pyarrow.parquet as pq
import pytest

from extract.inputs.vocabulary import VOCABULARY, vocabulary_table
from extract.sources.mini_trainer import train_tokenizer

TEXTS = ["The jury said the election was conducted fairly.\nA second line, with a comma."]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS * 20, vocab_size=300)


def test_every_id_is_decoded_as_text_not_as_stored(tokenizer):
    table = vocabulary_table(tokenizer)
    assert table.schema == VOCABULARY.schema
    texts = dict(zip(table.column("token_id").to_pylist(), table.column("token_text").to_pylist()))
    assert list(texts) == list(range(len(tokenizer)))
    (the,) = tokenizer(" the", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(the) != " the"  # the byte-level spelling, "Ġthe"
    assert texts[the] == " the"
    (newline,) = tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert texts[newline] == "\n"
    # Decoding each id alone gives back the text of a whole document, token by token.
    ids = tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"]
    assert "".join(texts[i] for i in ids) == TEXTS[0]


def test_the_eval_set_writes_each_suites_vocabulary(micro_settings):
    from extract.sources.suites import open_suite

    for suite in micro_settings.all_suites:  # a causal suite and a masked one
        tokenizer = open_suite(suite).load_tokenizer()
        table = pq.read_table(VOCABULARY.path(micro_settings.paths.lake, suite.name))
        assert table.num_rows == len(tokenizer)
        assert table.equals(vocabulary_table(tokenizer))
