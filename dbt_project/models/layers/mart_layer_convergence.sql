-- Where in depth seeds agree: per (suite, size, step, layer), E[conv] between seeds of the logit
-- lens at that layer (the model's final norm and output embedding applied to the residual stream
-- after the layer; extract/measures/layer_lens.py): the mean over contexts and ordered seed pairs
-- of -KL(p_a || p_b), as mart_expected_convergence has it at the output, which is this table's
-- last layer (layer = n_layers). pair_conv_std is the spread across seed pairs of each pair's
-- mean; kl_to_final the seeds' mean KL(p_final || p_layer), how far the layer still is from the
-- seed's own output. relative_depth = layer / n_layers puts sizes of different depths on one
-- axis. Incremental by partition (macros/partitions.sql).

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
    cross_seed.layer,
    cross_seed.n_layers,
    cross_seed.layer / cross_seed.n_layers as relative_depth,
    cross_seed.n_pairs,
    cross_seed.n_contexts,
    cross_seed.expected_conv,
    cross_seed.pair_conv_std,
    to_final.kl_to_final

from (
    select
        layer,
        any_value(n_layers) as n_layers,
        count(*) as n_pairs,
        any_value(n_contexts) as n_contexts,
        avg(pair_conv) as expected_conv,
        stddev_samp(pair_conv) as pair_conv_std
    from (
        select layer, any_value(n_layers) as n_layers, seed_a, seed_b, count(*) as n_contexts, -avg(kl) as pair_conv
        from {{ lake_partition('layer_kl', p) }} as layer_kl
        group by layer, seed_a, seed_b
    ) as per_pair
    group by layer
) as cross_seed
left join (
    select layer, avg(kl) as kl_to_final
    from {{ lake_partition('layer_final_kl', p) }} as layer_final_kl
    group by layer
) as to_final on cross_seed.layer = to_final.layer
{% if not loop.last %}union all{% endif %}
{% endfor %}
