-- Convergence at each context (Fehlauer et al. 2025):
-- conv(s_<t) = -E_{a != b} KL(p_a || p_b), the mean over all ordered seed pairs, both directions.

with pair_kl as (

    select * from {{ ref('stg_pair_kl') }}

),

per_context as (

    select
        suite,
        size,
        step,
        position,
        count(*) as n_pairs,
        avg(kl) as mean_kl,
        -avg(kl) as conv

    from pair_kl
    where seed_a <> seed_b
    group by suite, size, step, position

)

select * from per_context
