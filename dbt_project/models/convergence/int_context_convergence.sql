-- Convergence at each context (Fehlauer et al. 2025):
-- conv(s_<t) = -E_{a != b} KL(p_a || p_b), the mean over all ordered seed pairs, both directions.
--
-- Incremental by partition (macros/partitions.sql): each partition's pair_kl file is read once,
-- and the same pass counts what assert_pairs_complete checks per context (rows, distinct
-- pairs, rows of a self pair or a seed outside the manifest), so no test reads the lake.

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
    n_pairs,
    mean_kl,
    -mean_kl as conv,
    n_rows,
    n_distinct_pairs,
    n_invalid_pair_rows

from (
    select
        position,
        count(*) filter (where seed_a <> seed_b) as n_pairs,
        avg(kl) filter (where seed_a <> seed_b) as mean_kl,
        count(*) as n_rows,
        {{ distinct_pair_count(p) }} as n_distinct_pairs,
        {% if p is none -%}
        cast(null as bigint) as n_invalid_pair_rows
        {%- else -%}
        count(*) filter (
            where not coalesce(
                seed_a <> seed_b and {{ seed_in_manifest('seed_a', p) }} and {{ seed_in_manifest('seed_b', p) }},
                false)
        ) as n_invalid_pair_rows
        {%- endif %}

    from {{ lake_partition('pair_kl', p) }} as pair_kl
    group by position
) as per_context
{% if not loop.last %}union all{% endif %}
{% endfor %}
