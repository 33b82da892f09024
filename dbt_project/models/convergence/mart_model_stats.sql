-- Per checkpoint model statistics (Fehlauer et al. 2025): cross-entropy, entropy, KL to the
-- uniform and to the unigram distribution, each with its spread across seeds, and the
-- coefficient of variation of the cross-entropy across seeds (McEntire 2026). A table rebuilt
-- whole: it reads int_seed_stats, one row per (partition, seed), which costs nothing.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

seed_stats as (

    select * from {{ ref('int_seed_stats') }}

),

over_seeds as (

    select
        suite,
        size,
        step,
        count(*) as n_seeds,
        sum(n_contexts) as n_token_rows,
        -- means over every (seed, context): weight each seed's mean by its contexts
        sum(mean_surprisal * n_contexts) / sum(n_contexts) as cross_entropy,
        stddev_samp(mean_surprisal) as cross_entropy_seed_std,
        -- coefficient of variation of the validation loss across seeds (McEntire 2026): the
        -- spread of the seeds' cross-entropies over their plain mean
        stddev_samp(mean_surprisal) / avg(mean_surprisal) as cross_entropy_seed_cv,
        sum(mean_entropy * n_contexts) / sum(n_contexts) as mean_entropy,
        sum(mean_kl_uniform * n_contexts) / sum(n_contexts) as kl_uniform,
        stddev_samp(mean_kl_uniform) as kl_uniform_seed_std,
        sum(mean_kl_unigram * n_contexts) / sum(n_contexts) as kl_unigram,
        stddev_samp(mean_kl_unigram) as kl_unigram_seed_std,
        sum(mean_tail_mass * n_contexts) / sum(n_contexts) as mean_tail_mass

    from seed_stats
    group by suite, size, step

),

final as (

    select
        over_seeds.suite,
        over_seeds.size,
        over_seeds.step,
        checkpoints.n_params,
        over_seeds.n_seeds,
        over_seeds.n_token_rows,
        over_seeds.cross_entropy,
        over_seeds.cross_entropy_seed_std,
        over_seeds.cross_entropy_seed_cv,
        over_seeds.mean_entropy,
        over_seeds.kl_uniform,
        over_seeds.kl_uniform_seed_std,
        over_seeds.kl_unigram,
        over_seeds.kl_unigram_seed_std,
        over_seeds.mean_tail_mass

    from over_seeds
    inner join checkpoints
        on over_seeds.suite = checkpoints.suite
        and over_seeds.size = checkpoints.size
        and over_seeds.step = checkpoints.step

)

select * from final
order by suite, n_params, step
