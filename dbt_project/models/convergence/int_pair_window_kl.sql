-- Each ordered seed pair's KL summed over the contexts of each evaluation window of a checkpoint:
-- what the seed-and-context bootstrap of E[conv] resamples (analysis/bootstrap.py). The tokens
-- of one window are one text read in one forward pass, so they are resampled together; the
-- window's document comes along for resampling whole documents. Incremental by partition
-- (macros/partitions.sql): each partition's pair_kl file is read once.

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
    pair_kl.seed_a,
    pair_kl.seed_b,
    eval_tokens.doc_id,
    eval_tokens.window_id,
    count(*) as n_contexts,
    sum(pair_kl.kl) as sum_kl

from {{ lake_partition('pair_kl', p) }} as pair_kl
inner join {{ ref('stg_eval_tokens') }} as eval_tokens
    on eval_tokens.position = pair_kl.position
    and eval_tokens.suite = {{ sql_string(p.suite) if p is not none else 'null' }}
where pair_kl.seed_a <> pair_kl.seed_b
group by pair_kl.seed_a, pair_kl.seed_b, eval_tokens.doc_id, eval_tokens.window_id
{% if not loop.last %}union all{% endif %}
{% endfor %}
