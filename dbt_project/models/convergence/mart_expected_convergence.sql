-- Expected convergence E[conv] per checkpoint (Fehlauer et al. 2025, fig. 1): the mean over
-- contexts of conv(s_<t), its spread across contexts (standard deviation and variance, the
-- paper's variance of convergence per step), and the 1-sigma band across seed pairs. Which seeds
-- were compared and which of the suite's had no checkpoint at the step (seeds_missing, from the
-- manifest): a step compared over fewer seeds has fewer pairs, and the report marks it.
-- Incremental by partition (macros/partitions.sql): a partition's row is computed from that
-- partition's contexts only. Users order by n_params, step (rows of an incremental table have
-- no fixed order).

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
    checkpoints.suite,
    checkpoints.size,
    checkpoints.step,
    checkpoints.n_params,
    checkpoints.n_seeds,
    over_pairs.n_pairs,
    checkpoints.seeds,
    checkpoints.seeds_missing,
    checkpoints.n_seeds_missing,
    over_contexts.n_contexts,
    over_contexts.expected_conv,
    over_contexts.conv_std,
    over_contexts.conv_std / sqrt(over_contexts.n_contexts) as conv_se,
    over_contexts.conv_variance,
    over_pairs.pair_conv_std,
    over_contexts.expected_conv - over_pairs.pair_conv_std as band_low,
    over_contexts.expected_conv + over_pairs.pair_conv_std as band_high,
    -over_contexts.expected_conv as expected_kl

from (
    select
        count(*) as n_contexts,
        avg(conv) as expected_conv,
        stddev_samp(conv) as conv_std,
        var_samp(conv) as conv_variance
    from {{ ref('int_context_convergence') }}
    where {{ partition_filter(p) }}
    having count(*) > 0
) as over_contexts,
(
    select
        count(*) as n_pairs,
        stddev_samp(pair_conv) as pair_conv_std
    from {{ ref('int_pair_convergence') }}
    where {{ partition_filter(p) }}
    having count(*) > 0
) as over_pairs,
(
    select suite, size, step, n_params, n_seeds, seeds, seeds_missing, n_seeds_missing
    from {{ ref('stg_checkpoints') }}
    where {{ partition_filter(p) }}
) as checkpoints
{% if not loop.last %}union all{% endif %}
{% endfor %}
