-- What each seed predicts at the contexts of mart_divergent_contexts: one row per (context,
-- seed), its most probable var divergent_context_predictions tokens (from token_stats' top-k,
-- most probable first) as ids, text (stg_vocabulary; NULL where the lake has no vocabulary yet)
-- and probabilities, and the probability it gave the target.
--
-- One row per seed rather than a list of structs in mart_divergent_contexts: a reader joins on
-- (suite, size, step, rank) and filters or groups by seed in plain SQL. A table, as the mart it
-- extends: token_stats is read for those few positions only, but whole (DuckDB cannot prune its
-- files by a join), once per build.

{% set n_predictions = var('divergent_context_predictions') | int %}

with divergent_contexts as (

    select * from {{ ref('mart_divergent_contexts') }}

),

token_stats as (

    select * from {{ ref('stg_token_stats') }}

),

vocabulary as (

    select * from {{ ref('stg_vocabulary') }}

),

-- one row per (context, seed, prediction), prediction_rank 1 the most probable
predicted as (

    select
        divergent_contexts.suite,
        divergent_contexts.size,
        divergent_contexts.step,
        divergent_contexts.n_params,
        divergent_contexts.rank,
        divergent_contexts.position,
        token_stats.seed,
        exp(-token_stats.surprisal) as target_probability,
        unnest(token_stats.topk_ids[1:{{ n_predictions }}]) as token_id,
        unnest(token_stats.topk_logprobs[1:{{ n_predictions }}]) as logprob,
        unnest(range(1, {{ n_predictions }} + 1)) as prediction_rank

    from divergent_contexts
    inner join token_stats
        on divergent_contexts.suite = token_stats.suite
        and divergent_contexts.size = token_stats.size
        and divergent_contexts.step = token_stats.step
        and divergent_contexts.position = token_stats.position

),

final as (

    select
        predicted.suite,
        predicted.size,
        predicted.step,
        predicted.n_params,
        predicted.rank,
        predicted.position,
        predicted.seed,
        predicted.target_probability,
        list(predicted.token_id order by predicted.prediction_rank) as top_token_ids,
        list(vocabulary.token_text order by predicted.prediction_rank) as top_token_texts,
        list(exp(predicted.logprob) order by predicted.prediction_rank) as top_probabilities

    from predicted
    left join vocabulary
        on predicted.suite = vocabulary.suite
        and predicted.token_id = vocabulary.token_id
    -- a top-k shorter than var divergent_context_predictions pads with NULL
    where predicted.token_id is not null
    group by all

)

select * from final
order by suite, n_params, step, rank, seed
