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
        token_stats.topk_ids[1:{{ n_predictions }}] as top_token_ids,
        list_transform(token_stats.topk_logprobs[1:{{ n_predictions }}], lambda logprob: exp(logprob))
            as top_probabilities

    from divergent_contexts
    inner join token_stats
        on divergent_contexts.suite = token_stats.suite
        and divergent_contexts.size = token_stats.size
        and divergent_contexts.step = token_stats.step
        and divergent_contexts.position = token_stats.position

),

-- each predicted id on a row of its own to look up its text, then back in a list in order. (The
-- lists are cut from the scan first: unnesting token_stats' lists straight from the Parquet scan
-- and aggregating them back made DuckDB 2.0.0 fail with an internal error, "dict-surviving
-- cache: global dictionary column 0 changed identity", on the demo lake.)
predicted_ids as (

    select
        suite,
        size,
        step,
        rank,
        seed,
        unnest(top_token_ids) as token_id,
        generate_subscripts(top_token_ids, 1) as prediction_rank

    from predicted

),

predicted_texts as (

    select
        predicted_ids.suite,
        predicted_ids.size,
        predicted_ids.step,
        predicted_ids.rank,
        predicted_ids.seed,
        list(vocabulary.token_text order by predicted_ids.prediction_rank) as top_token_texts

    from predicted_ids
    left join vocabulary
        on predicted_ids.suite = vocabulary.suite
        and predicted_ids.token_id = vocabulary.token_id
    group by predicted_ids.suite, predicted_ids.size, predicted_ids.step, predicted_ids.rank, predicted_ids.seed

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
        predicted.top_token_ids,
        predicted_texts.top_token_texts,
        predicted.top_probabilities

    from predicted
    inner join predicted_texts
        on predicted.suite = predicted_texts.suite
        and predicted.size = predicted_texts.size
        and predicted.step = predicted_texts.step
        and predicted.rank = predicted_texts.rank
        and predicted.seed = predicted_texts.seed

)

select * from final
order by suite, n_params, step, rank, seed
