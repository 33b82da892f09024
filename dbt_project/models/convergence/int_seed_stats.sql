-- Each seed's means over the contexts of a checkpoint: the spread of these across seeds is
-- the seed-to-seed spread of cross-entropy and of the KL to uniform / unigram. Incremental by
-- partition (macros/partitions.sql); the same pass counts the rows with NULL or out-of-range
-- values (stg_token_stats_values_not_null, assert_token_stats_in_range), so no test reads the
-- lake.

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
    seed,
    count(*) as n_contexts,
    avg(surprisal) as mean_surprisal,
    avg(entropy) as mean_entropy,
    avg(kl_uniform) as mean_kl_uniform,
    avg(kl_unigram) as mean_kl_unigram,
    avg(tail_mass) as mean_tail_mass,
    count(*) filter (where surprisal is null or entropy is null) as n_null_rows,
    -- surprisal, entropy and both KLs at least 0 (fp32 tolerance 1e-5 nats) and finite; the
    -- tail mass a probability
    count(*) filter (
        where not (surprisal >= -1e-5 and surprisal < 'infinity'::double)
            or not (entropy >= -1e-5 and entropy < 'infinity'::double)
            or not (kl_uniform >= -1e-5 and kl_uniform < 'infinity'::double)
            or not (kl_unigram >= -1e-5 and kl_unigram < 'infinity'::double)
            or not (tail_mass >= -1e-5 and tail_mass <= 1 + 1e-5)
    ) as n_out_of_range_rows

from {{ lake_partition('token_stats', p) }} as token_stats
group by seed
{% if not loop.last %}union all{% endif %}
{% endfor %}
