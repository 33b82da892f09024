-- Weight norms and squared distances to earlier checkpoints, per seed and parameter group, of
-- complete partitions only (macros/complete_partition_rows.sql). A lake written before weight
-- statistics were extracted reads as no rows, with the contract's columns.

{% set lake_table = source('lake', 'weight_stats') %}

with source as (

    {{ complete_partition_rows('weight_stats', [
        ('seed', 'integer'), ('param_group', 'varchar'), ('n_params', 'bigint'), ('l2_norm', 'double'),
        ('prev_step', 'bigint'), ('sq_dist_prev', 'double'), ('sq_dist_init', 'double')]) }}

),

renamed as (

    select
        suite,
        size,
        step,
        cast(seed as integer) as seed,
        cast(param_group as varchar) as param_group,
        cast(n_params as bigint) as n_params,
        cast(l2_norm as double) as l2_norm,
        cast(prev_step as bigint) as prev_step,
        cast(sq_dist_prev as double) as sq_dist_prev,
        cast(sq_dist_init as double) as sq_dist_init

    from source

)

select * from renamed
