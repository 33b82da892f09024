-- Surprisal of each context of each checkpoint, averaged over seeds: the per-context term of
-- the (conditional) cross-entropy, and at a size's last step its final surprisal.

with token_stats as (

    select * from {{ ref('stg_token_stats') }}

),

per_context as (

    select
        suite,
        size,
        step,
        position,
        count(*) as n_seeds,
        avg(surprisal) as mean_surprisal

    from token_stats
    group by suite, size, step, position

)

select * from per_context
