-- Conditional convergence (Fehlauer et al. 2025): E[conv] restricted to the contexts whose
-- target token s_t has a property (frequency bin, PoS, PoS group, word class, final-surprisal bin) or whose
-- previous token s_{t-1} has one (prev_pos, prev_pos_group), with the conditional
-- cross-entropy of the same contexts. Long format: one row per (suite, size, step, condition,
-- level); a context whose level is NULL (untagged, unknown tag) is in no level.
--
-- Incremental by partition (macros/partitions.sql). A partition's rows depend on its own
-- contexts, on the suite's token features, and on its size's final step (the final-surprisal
-- bins), so they are rebuilt when any of the three changes: extracting the final step rebuilds
-- every step of that size, any other step only itself.

{{ config(
    materialized='incremental',
    incremental_strategy='replace_partitions',
    partition_inputs=['manifest', 'final_step', 'token_features'],
    on_schema_change='sync_all_columns',
    post_hook="{{ record_partitions() }}",
) }}

{#- (condition, the column ordering its levels: a bin order; NULL = rank of the tag by count) -#}
{% set conditions = [
    ('frequency_bin', 'frequency_bin_order'),
    ('pos', none),
    ('pos_group', none),
    ('word_class', none),
    ('prev_pos', none),
    ('prev_pos_group', none),
    ('final_surprisal_bin', 'final_surprisal_bin_order'),
] %}
{% set partitions = partition_plan().todo %}
{% set suites = partitions | map(attribute='suite') | unique | list %}

with token_features as materialized (

    select
        suite,
        position,
        frequency_bin,
        frequency_bin_order,
        pos,
        pos_group,
        word_class,
        prev_pos,
        prev_pos_group

    from {{ ref('int_token_features') }}
    where suite in ({% for suite in suites %}{{ sql_string(suite) }}, {% endfor %}null)

),

final_surprisal as materialized (

    select suite, size, position, final_surprisal_bin, final_surprisal_bin_order
    from {{ ref('int_final_surprisal') }}
    where suite in ({% for suite in suites %}{{ sql_string(suite) }}, {% endfor %}null)

),

-- Tags and tag groups sort by how many evaluation tokens of the suite carry them (most first,
-- then by name): the rank is the level_order of the PoS conditions.
tag_ranks as materialized (

    {% for condition, order_column in conditions if order_column is none %}
    select
        suite,
        '{{ condition }}' as condition,
        {{ condition }} as level,
        row_number() over (partition by suite order by count(*) desc, {{ condition }}) as tag_rank

    from token_features
    where {{ condition }} is not null
    group by suite, {{ condition }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

per_level as (

    {% for p in partitions or [none] %}
    -- one grouping set per condition: every condition from one pass over the partition's contexts
    select
        {{ partition_columns(p) }},
        case
            {% for condition, _ in conditions %}
            when grouping({{ condition }}) = 0 then '{{ condition }}'
            {% endfor %}
        end as condition,
        coalesce({{ conditions | map(attribute=0) | join(', ') }}) as level,
        coalesce(frequency_bin_order, final_surprisal_bin_order) as bin_order,
        count(*) as n_contexts,
        avg(conv) as expected_conv,
        stddev_samp(conv) as conv_std,
        stddev_samp(conv) / sqrt(count(*)) as conv_se,
        -- every seed has every context of a complete partition, so the mean over contexts of
        -- the per-context mean over seeds is the mean over (seed, context)
        avg(mean_surprisal) as cross_entropy

    from (
        select suite, size, position, conv
        from {{ ref('int_context_convergence') }}
        where {{ partition_filter(p) }}
    ) as context_convergence
    left join (
        select position, mean_surprisal
        from {{ ref('int_context_surprisal') }}
        where {{ partition_filter(p) }}
    ) as context_surprisal
        on context_convergence.position = context_surprisal.position
    left join token_features
        on context_convergence.suite = token_features.suite
        and context_convergence.position = token_features.position
    left join final_surprisal
        on context_convergence.suite = final_surprisal.suite
        and context_convergence.size = final_surprisal.size
        and context_convergence.position = final_surprisal.position
    group by grouping sets (
        {% for condition, order_column in conditions -%}
        ({{ condition }}{{ ', ' ~ order_column if order_column }}){{ ',' if not loop.last }}
        {% endfor %}
    )
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        per_level.suite,
        per_level.size,
        per_level.step,
        checkpoints.n_params,
        per_level.condition,
        per_level.level,
        cast(coalesce(per_level.bin_order, tag_ranks.tag_rank) as integer) as level_order,
        per_level.n_contexts,
        per_level.expected_conv,
        per_level.conv_std,
        per_level.conv_se,
        per_level.cross_entropy

    from per_level
    inner join {{ ref('stg_checkpoints') }} as checkpoints
        on per_level.suite = checkpoints.suite
        and per_level.size = checkpoints.size
        and per_level.step = checkpoints.step
    left join tag_ranks
        on per_level.suite = tag_ranks.suite
        and per_level.condition = tag_ranks.condition
        and per_level.level = tag_ranks.level
    where per_level.level is not null

)

select * from final
