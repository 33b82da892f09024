-- Weight statistics per checkpoint, seed and parameter group: the L2 norm and the squared L2
-- distances to the same seed's previous and step-0 checkpoints, as extract computed them
-- exactly from the weights. n_params is the model's (from the manifest, as in every mart);
-- group_n_params the group's. A small table rebuilt whole.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

weight_stats as (

    select * from {{ ref('stg_weight_stats') }}

),

final as (

    select
        weight_stats.suite,
        weight_stats.size,
        weight_stats.step,
        weight_stats.seed,
        checkpoints.n_params,
        weight_stats.param_group,
        weight_stats.n_params as group_n_params,
        weight_stats.l2_norm,
        weight_stats.prev_step,
        weight_stats.sq_dist_prev,
        weight_stats.sq_dist_init

    from weight_stats
    inner join checkpoints
        on weight_stats.suite = checkpoints.suite
        and weight_stats.size = checkpoints.size
        and weight_stats.step = checkpoints.step

)

select * from final
order by suite, n_params, seed, step, param_group
