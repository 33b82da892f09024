-- Each ordered seed pair's mean KL over the contexts of a checkpoint: the spread of these
-- across pairs is the 1-sigma band of expected convergence. Incremental by partition
-- (macros/partitions.sql); the same pass counts the KLs that are NULL, negative or not finite
-- (stg_pair_kl_kl_not_null, assert_kl_nonnegative), so no test reads the lake.

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
    seed_a,
    seed_b,
    n_contexts,
    mean_kl,
    -mean_kl as pair_conv,
    n_null_kl,
    n_invalid_kl

from (
    select
        seed_a,
        seed_b,
        count(*) as n_contexts,
        avg(kl) as mean_kl,
        count(*) filter (where kl is null) as n_null_kl,
        -- KL is never negative; fp32 rounding may leave a true 0 a hair below it (-1e-5 nats)
        count(*) filter (where not (kl >= -1e-5 and kl < 'infinity'::double)) as n_invalid_kl

    from {{ lake_partition('pair_kl', p) }} as pair_kl
    where seed_a <> seed_b
    group by seed_a, seed_b
) as per_pair
{% if not loop.last %}union all{% endif %}
{% endfor %}
