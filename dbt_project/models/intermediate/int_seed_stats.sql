-- Each seed's means over the contexts of a checkpoint: the spread of these across seeds is
-- the seed-to-seed spread of cross-entropy and of the KL to uniform / unigram.

with token_stats as (

    select * from {{ ref('stg_token_stats') }}

),

per_seed as (

    select
        suite,
        size,
        step,
        seed,
        count(*) as n_contexts,
        avg(surprisal) as mean_surprisal,
        avg(entropy) as mean_entropy,
        avg(kl_uniform) as mean_kl_uniform,
        avg(kl_unigram) as mean_kl_unigram,
        avg(tail_mass) as mean_tail_mass

    from token_stats
    group by suite, size, step, seed

)

select * from per_seed
