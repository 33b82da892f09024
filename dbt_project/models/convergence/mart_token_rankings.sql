-- Tokens ranked by mean KL between seeds (Fehlauer et al. 2025): at the last step of each
-- (suite, size), every token type with at least var ranking_min_count occurrences in the
-- evaluation set, ranked by its mean KL over its contexts and all ordered seed pairs (rank 1 =
-- the lowest, where the seeds agree most). The lowest, middle and highest var
-- ranking_group_size tokens are marked in rank_group.

{% set min_count = var('ranking_min_count', 3) | int %}
{% set group_size = var('ranking_group_size', 10) | int %}

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

context_convergence as (

    select * from {{ ref('int_context_convergence') }}

),

eval_tokens as (

    select * from {{ ref('stg_eval_tokens') }}

),

last_steps as (

    select * from {{ ref('int_last_steps') }}

),

occurrences as (

    select
        suite,
        token_id,
        count(*) as n_occurrences,
        min(token_text) as token_text

    from eval_tokens
    group by suite, token_id

),

-- each context's mean KL weighted by its pairs, so that the mean weighs every (context, pair)
-- once, as a mean straight over the pair KLs would (read per context: the last steps' contexts
-- are a few rows of int_context_convergence, their pair KLs a large part of the lake)
per_token as (

    select
        context_convergence.suite,
        context_convergence.size,
        context_convergence.step,
        eval_tokens.token_id,
        count(*) as n_contexts,
        sum(context_convergence.mean_kl * context_convergence.n_pairs)
            / sum(context_convergence.n_pairs) as mean_kl

    from context_convergence
    inner join last_steps
        on context_convergence.suite = last_steps.suite
        and context_convergence.size = last_steps.size
        and context_convergence.step = last_steps.last_step
    inner join eval_tokens
        on context_convergence.suite = eval_tokens.suite
        and context_convergence.position = eval_tokens.position
    where context_convergence.n_pairs > 0
    group by context_convergence.suite, context_convergence.size, context_convergence.step, eval_tokens.token_id

),

eligible as (

    select
        per_token.*,
        occurrences.token_text,
        occurrences.n_occurrences

    from per_token
    inner join occurrences
        on per_token.suite = occurrences.suite
        and per_token.token_id = occurrences.token_id
    where occurrences.n_occurrences >= {{ min_count }}

),

ranked as (

    select
        *,
        row_number() over (partition by suite, size order by mean_kl, token_id) as rank,
        count(*) over (partition by suite, size) as n_ranked

    from eligible

),

grouped as (

    select
        *,
        -- lowest wins over highest wins over middle where fewer than 3 groups' worth are ranked
        case
            when rank <= {{ group_size }} then 'lowest'
            when rank > n_ranked - {{ group_size }} then 'highest'
            when rank > (n_ranked - {{ group_size }}) // 2
                and rank <= (n_ranked - {{ group_size }}) // 2 + {{ group_size }} then 'middle'
        end as rank_group

    from ranked

),

final as (

    select
        grouped.suite,
        grouped.size,
        grouped.step,
        checkpoints.n_params,
        grouped.token_id,
        grouped.token_text,
        grouped.n_occurrences,
        grouped.n_contexts,
        grouped.mean_kl,
        grouped.rank,
        grouped.n_ranked,
        grouped.rank_group

    from grouped
    inner join checkpoints
        on grouped.suite = checkpoints.suite
        and grouped.size = checkpoints.size
        and grouped.step = checkpoints.step

)

select * from final
order by suite, n_params, rank
