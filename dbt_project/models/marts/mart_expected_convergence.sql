-- Expected convergence E[conv] per checkpoint (Fehlauer et al. 2025, fig. 1): the mean over
-- contexts of conv(s_<t), its spread across contexts (standard deviation and variance, the
-- paper's variance of convergence per step), and the 1-sigma band across seed pairs.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

context_convergence as (

    select * from {{ ref('int_context_convergence') }}

),

pair_convergence as (

    select * from {{ ref('int_pair_convergence') }}

),

over_contexts as (

    select
        suite,
        size,
        step,
        count(*) as n_contexts,
        avg(conv) as expected_conv,
        stddev_samp(conv) as conv_std,
        var_samp(conv) as conv_variance

    from context_convergence
    group by suite, size, step

),

over_pairs as (

    select
        suite,
        size,
        step,
        count(*) as n_pairs,
        stddev_samp(pair_conv) as pair_conv_std

    from pair_convergence
    group by suite, size, step

),

final as (

    select
        over_contexts.suite,
        over_contexts.size,
        over_contexts.step,
        checkpoints.n_params,
        checkpoints.n_seeds,
        over_pairs.n_pairs,
        over_contexts.n_contexts,
        over_contexts.expected_conv,
        over_contexts.conv_std,
        over_contexts.conv_std / sqrt(over_contexts.n_contexts) as conv_se,
        over_contexts.conv_variance,
        over_pairs.pair_conv_std,
        over_contexts.expected_conv - over_pairs.pair_conv_std as band_low,
        over_contexts.expected_conv + over_pairs.pair_conv_std as band_high,
        -over_contexts.expected_conv as expected_kl

    from over_contexts
    inner join over_pairs
        on over_contexts.suite = over_pairs.suite
        and over_contexts.size = over_pairs.size
        and over_contexts.step = over_pairs.step
    inner join checkpoints
        on over_contexts.suite = checkpoints.suite
        and over_contexts.size = checkpoints.size
        and over_contexts.step = checkpoints.step

)

select * from final
order by suite, n_params, step
