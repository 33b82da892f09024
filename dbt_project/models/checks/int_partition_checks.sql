-- What the lake's data tests check, per complete partition, rolled up from the per-context
-- counts int_context_convergence and int_context_surprisal took while reading the partition:
-- so the tests read one row per partition instead of every row of the lake. Incremental by
-- partition (macros/partitions.sql): a partition is checked when it is built, and again when
-- the suite's evaluation set (read through int_token_features' digest) changes.

-- depends_on: {{ ref('int_token_features') }}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_partitions',
    partition_inputs=['manifest', 'token_features'],
    on_schema_change='sync_all_columns',
    post_hook="{{ record_partitions() }}",
) }}

{% set partitions = partition_plan().todo %}

with eval_positions as materialized (

    select suite, position from {{ ref('stg_eval_tokens') }}
    {% if partitions %}
    where suite in ({% for suite in partitions | map(attribute='suite') | unique %}{{ sql_string(suite) }}{{ ', ' if not loop.last }}{% endfor %})
    {% else %}
    where false
    {% endif %}

)

{% for p in partitions or [none] %}
{% set n = p.n_seeds if p is not none else 0 %}
select
    {{ partition_columns(p) }},
    cast({{ n }} as integer) as n_seeds,
    token_contexts.n_rows as token_stats_rows,
    pair_contexts.n_rows as pair_kl_rows,
    icl_scores.n_rows as icl_scores_rows,
    fingerprints.n_rows as fingerprints_rows,
    weight_stats.n_rows as weight_stats_rows,
    weight_sketches.n_rows as weight_sketches_rows,
    loglik.n_rows as loglik_rows,
    blimp_scores.n_rows as blimp_scores_rows,
    weight_sketches.min_dim as min_weight_sketch_dim,
    weight_sketches.max_dim as max_weight_sketch_dim,
    token_contexts.n_contexts as n_token_contexts,
    pair_contexts.n_contexts as n_pair_contexts,
    token_contexts.n_incomplete as n_incomplete_token_contexts,
    pair_contexts.n_incomplete as n_incomplete_pair_contexts,
    unmatched.n_pair_only as n_pair_contexts_without_token_stats,
    unmatched.n_token_only as n_token_contexts_without_pair_kl,
    outside.n_outside as n_contexts_outside_eval_set

from (
    select
        coalesce(sum(n_seeds), 0) as n_rows,
        count(*) as n_contexts,
        -- every manifest seed exactly once, and no other seed
        count(*) filter (
            where n_seeds <> {{ n }} or n_distinct_seeds <> {{ n }} or n_foreign_seed_rows > 0
        ) as n_incomplete
    from {{ ref('int_context_surprisal') }}
    where {{ partition_filter(p) }}
) as token_contexts,
(
    select
        coalesce(sum(n_rows), 0) as n_rows,
        count(*) as n_contexts,
        -- one KL for every ordered pair of distinct manifest seeds, and nothing else
        count(*) filter (
            where n_rows <> {{ n * (n - 1) }} or n_distinct_pairs <> {{ n * (n - 1) }}
                or n_invalid_pair_rows > 0
        ) as n_incomplete
    from {{ ref('int_context_convergence') }}
    where {{ partition_filter(p) }}
) as pair_contexts,
(
    select
        count(*) filter (where token_contexts.position is null) as n_pair_only,
        count(*) filter (where pair_contexts.position is null) as n_token_only
    from (
        select position from {{ ref('int_context_surprisal') }} where {{ partition_filter(p) }}
    ) as token_contexts
    full outer join (
        select position from {{ ref('int_context_convergence') }} where {{ partition_filter(p) }}
    ) as pair_contexts
        on token_contexts.position = pair_contexts.position
) as unmatched,
(
    select count(*) as n_outside
    from {{ ref('int_context_convergence') }} as contexts
    where {{ partition_filter(p, 'contexts') }}
        and not exists (
            select 1 from eval_positions
            where eval_positions.suite = contexts.suite and eval_positions.position = contexts.position
        )
) as outside,
(
    select count(*) as n_rows from {{ ref('stg_icl_scores') }} where {{ partition_filter(p) }}
) as icl_scores,
(
    select count(*) as n_rows from {{ ref('stg_fingerprints') }} where {{ partition_filter(p) }}
) as fingerprints,
(
    select count(*) as n_rows from {{ ref('stg_weight_stats') }} where {{ partition_filter(p) }}
) as weight_stats,
(
    -- the sketches' lengths, against the manifest's weight_sketch_dim
    select count(*) as n_rows, min(len(sketch)) as min_dim, max(len(sketch)) as max_dim
    from {{ ref('stg_weight_sketches') }}
    where {{ partition_filter(p) }}
) as weight_sketches,
(
    select count(*) as n_rows from {{ ref('stg_loglik') }} where {{ partition_filter(p) }}
) as loglik,
(
    select count(*) as n_rows from {{ ref('stg_blimp_scores') }} where {{ partition_filter(p) }}
) as blimp_scores
{% if p is none %}where false{% endif %}
{% if not loop.last %}union all{% endif %}
{% endfor %}
