-- Surprisal of each context of each checkpoint, averaged over seeds: the per-context term of
-- the (conditional) cross-entropy, and at a size's last step its final surprisal.
--
-- Incremental by partition (macros/partitions.sql): each partition's token_stats is read once
-- (seed, position and surprisal; never the top-k lists), and the same pass counts what
-- assert_token_stats_complete checks per context (distinct manifest seeds, other seeds).

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
    position,
    count(*) as n_seeds,
    avg(surprisal) as mean_surprisal,
    {{ distinct_seed_count(p) }} as n_distinct_seeds,
    {% if p is none -%}
    cast(null as bigint) as n_foreign_seed_rows
    {%- else -%}
    count(*) filter (where not {{ seed_in_manifest('seed', p) }}) as n_foreign_seed_rows
    {%- endif %}

from {{ lake_partition('token_stats', p) }} as token_stats
group by position
{% if not loop.last %}union all{% endif %}
{% endfor %}
