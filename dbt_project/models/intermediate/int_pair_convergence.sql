-- Each ordered seed pair's mean KL over the contexts of a checkpoint: the spread of these
-- across pairs is the 1-sigma band of expected convergence.

with pair_kl as (

    select * from {{ ref('stg_pair_kl') }}

),

per_pair as (

    select
        suite,
        size,
        step,
        seed_a,
        seed_b,
        count(*) as n_contexts,
        avg(kl) as mean_kl,
        -avg(kl) as pair_conv

    from pair_kl
    where seed_a <> seed_b
    group by suite, size, step, seed_a, seed_b

)

select * from per_pair
