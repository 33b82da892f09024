-- How far each seed's predictions move along its own training: per (suite, size, step, seed,
-- from_step), the distribution over contexts of the exact KL between the seed's next-token
-- distribution at `step` and at the earlier checkpoint `from_step` (extract/measures/trajectory.py).
-- from_step is the seed's previous checkpoint (is_previous) and every configured anchor before
-- the step (`[trajectory] anchors`); the diffusion exponents (table trajectory_exponents) are
-- fitted to kl_mean against step - from_step from each anchor. Both directions: kl_* is
-- KL(p_step || p_from), kl_reverse_* is KL(p_from || p_step); percentiles as the distribution
-- marts (quantile_cont). Incremental by partition (macros/partitions.sql).

{{ config(
    materialized='incremental',
    incremental_strategy='replace_partitions',
    partition_inputs=['manifest'],
    on_schema_change='sync_all_columns',
    post_hook="{{ record_partitions() }}",
) }}

{% set partitions = partition_plan().todo %}

{% for p in partitions or [none] %}
select
    {{ partition_columns(p) }},
    per_seed_and_start.seed,
    per_seed_and_start.from_step,
    per_seed_and_start.from_step = previous.previous_step as is_previous,
    n_contexts,
    kl_mean,
    kl_quantiles[1] as kl_p10,
    kl_quantiles[2] as kl_p50,
    kl_quantiles[3] as kl_p90,
    kl_quantiles[4] as kl_p99,
    kl_max,
    kl_reverse_mean,
    kl_reverse_p50,
    (kl_mean + kl_reverse_mean) / 2 as kl_symmetric_mean

from (
    select
        seed,
        from_step,
        count(*) as n_contexts,
        avg(kl_later_earlier) as kl_mean,
        quantile_cont(kl_later_earlier, [0.1, 0.5, 0.9, 0.99]) as kl_quantiles,
        max(kl_later_earlier) as kl_max,
        avg(kl_earlier_later) as kl_reverse_mean,
        quantile_cont(kl_earlier_later, 0.5) as kl_reverse_p50
    from {{ lake_partition('trajectory_kl', p) }} as trajectory
    group by seed, from_step
) as per_seed_and_start
-- The previous checkpoint is the latest earlier step; a grouped max rather than a window over
-- the groups above, which DuckDB 2.0.0 evaluates wrongly here (it returned steps of other
-- partitions of the size).
inner join (
    select seed, max(from_step) as previous_step
    from {{ lake_partition('trajectory_kl', p) }} as trajectory
    group by seed
) as previous on per_seed_and_start.seed = previous.seed
{% if not loop.last %}union all{% endif %}
{% endfor %}
