-- Conditional convergence (Fehlauer et al. 2025): E[conv] restricted to the contexts whose
-- target token s_t has a property (frequency bin, PoS, PoS group, final-surprisal bin) or whose
-- previous token s_{t-1} has one (prev_pos, prev_pos_group), with the conditional
-- cross-entropy of the same contexts. Long format: one row per (suite, size, step, condition,
-- level); a context whose level is NULL (untagged, unknown tag) is in no level.

{#- (condition, the column ordering its levels: a bin order; NULL = rank of the tag by count) -#}
{% set conditions = [
    ('frequency_bin', 'frequency_bin_order'),
    ('pos', none),
    ('pos_group', none),
    ('prev_pos', none),
    ('prev_pos_group', none),
    ('final_surprisal_bin', 'final_surprisal_bin_order'),
] %}

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

context_convergence as (

    select * from {{ ref('int_context_convergence') }}

),

context_surprisal as (

    select * from {{ ref('int_context_surprisal') }}

),

token_features as (

    select * from {{ ref('int_token_features') }}

),

final_surprisal as (

    select * from {{ ref('int_final_surprisal') }}

),

contexts as (

    select
        context_convergence.suite,
        context_convergence.size,
        context_convergence.step,
        context_convergence.position,
        context_convergence.conv,
        context_surprisal.mean_surprisal,
        token_features.frequency_bin,
        token_features.frequency_bin_order,
        token_features.pos,
        token_features.pos_group,
        token_features.prev_pos,
        token_features.prev_pos_group,
        final_surprisal.final_surprisal_bin,
        final_surprisal.final_surprisal_bin_order

    from context_convergence
    left join context_surprisal
        on context_convergence.suite = context_surprisal.suite
        and context_convergence.size = context_surprisal.size
        and context_convergence.step = context_surprisal.step
        and context_convergence.position = context_surprisal.position
    left join token_features
        on context_convergence.suite = token_features.suite
        and context_convergence.position = token_features.position
    left join final_surprisal
        on context_convergence.suite = final_surprisal.suite
        and context_convergence.size = final_surprisal.size
        and context_convergence.position = final_surprisal.position

),

-- Tags and tag groups sort by how many evaluation tokens of the suite carry them (most first,
-- then by name): the rank is the level_order of the PoS conditions.
tag_ranks as (

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

levels as (

    {% for condition, order_column in conditions %}
    select
        suite,
        size,
        step,
        position,
        conv,
        mean_surprisal,
        '{{ condition }}' as condition,
        {{ condition }} as level,
        {{ order_column if order_column else 'cast(null as integer)' }} as bin_order

    from contexts
    where {{ condition }} is not null
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

ordered as (

    select
        levels.*,
        cast(coalesce(levels.bin_order, tag_ranks.tag_rank) as integer) as level_order

    from levels
    left join tag_ranks
        on levels.suite = tag_ranks.suite
        and levels.condition = tag_ranks.condition
        and levels.level = tag_ranks.level

),

per_level as (

    select
        suite,
        size,
        step,
        condition,
        level,
        level_order,
        count(*) as n_contexts,
        avg(conv) as expected_conv,
        stddev_samp(conv) as conv_std,
        stddev_samp(conv) / sqrt(count(*)) as conv_se,
        -- every seed has every context of a complete partition, so the mean over contexts of
        -- the per-context mean over seeds is the mean over (seed, context)
        avg(mean_surprisal) as cross_entropy

    from ordered
    group by suite, size, step, condition, level, level_order

),

final as (

    select
        per_level.suite,
        per_level.size,
        per_level.step,
        checkpoints.n_params,
        per_level.condition,
        per_level.level,
        per_level.level_order,
        per_level.n_contexts,
        per_level.expected_conv,
        per_level.conv_std,
        per_level.conv_se,
        per_level.cross_entropy

    from per_level
    inner join checkpoints
        on per_level.suite = checkpoints.suite
        and per_level.size = checkpoints.size
        and per_level.step = checkpoints.step

)

select * from final
order by suite, n_params, step, condition, level_order
