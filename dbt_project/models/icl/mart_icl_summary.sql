-- ICL score per checkpoint: the mean over seeds of each seed's ICL score, with its spread
-- across seeds. Every seed scores the same sequences (assert_icl_scores_complete).

with icl_scores as (

    select * from {{ ref('mart_icl_scores') }}

),

over_seeds as (

    select
        suite,
        size,
        step,
        n_params,
        short_context,
        long_context,
        target_position,
        count(*) as n_seeds,
        max(n_sequences) as n_sequences,
        avg(icl_score) as icl_score,
        stddev_samp(icl_score) as icl_score_seed_std,
        stddev_samp(icl_score) / sqrt(count(*)) as icl_score_seed_se

    from icl_scores
    group by suite, size, step, n_params, short_context, long_context, target_position

)

select * from over_seeds
order by suite, n_params, step
