-- The levels of each condition partition the contexts that have one: per (suite, size, step,
-- condition) the levels' n_contexts sum to the contexts whose level is not NULL (for pos: the
-- contexts whose target carries a Penn tag), and for frequency_bin to every context.
-- In a build, over the partitions the build wrote into the mart (unique_per_partition says why).

{% set conditions = ['pos', 'pos_group', 'word_class', 'prev_pos', 'prev_pos_group', 'final_surprisal_bin'] %}
{% set scope = partitions_built_now(ref('mart_conditional_convergence')) %}

with contexts as (

    select
        context_convergence.suite,
        context_convergence.size,
        context_convergence.step,
        token_features.pos,
        token_features.pos_group,
        token_features.word_class,
        token_features.prev_pos,
        token_features.prev_pos_group,
        final_surprisal.final_surprisal_bin

    from {{ ref('int_context_convergence') }} as context_convergence
    left join {{ ref('int_token_features') }} as token_features
        on context_convergence.suite = token_features.suite
        and context_convergence.position = token_features.position
    left join {{ ref('int_final_surprisal') }} as final_surprisal
        on context_convergence.suite = final_surprisal.suite
        and context_convergence.size = final_surprisal.size
        and context_convergence.position = final_surprisal.position
    {% if scope is not none %}
    where {{ partitions_predicate(scope, 'context_convergence') }}
    {% endif %}

),

expected as (

    -- every context has a frequency bin
    select suite, size, step, 'frequency_bin' as condition, count(*) as n_expected
    from contexts
    group by suite, size, step

    {% for condition in conditions %}
    union all
    select suite, size, step, '{{ condition }}' as condition, count({{ condition }}) as n_expected
    from contexts
    group by suite, size, step
    {% endfor %}

),

actual as (

    select suite, size, step, condition, sum(n_contexts) as n_actual
    from {{ ref('mart_conditional_convergence') }}
    {% if scope is not none %}
    where {{ partitions_predicate(scope) }}
    {% endif %}
    group by suite, size, step, condition

)

select
    coalesce(expected.suite, actual.suite) as suite,
    coalesce(expected.size, actual.size) as size,
    coalesce(expected.step, actual.step) as step,
    coalesce(expected.condition, actual.condition) as condition,
    coalesce(expected.n_expected, 0) as n_expected,
    coalesce(actual.n_actual, 0) as n_actual

from expected
full outer join actual
    on expected.suite = actual.suite
    and expected.size = actual.size
    and expected.step = actual.step
    and expected.condition = actual.condition
where coalesce(expected.n_expected, 0) <> coalesce(actual.n_actual, 0)
