-- The design rows of the paper's per-step regression of conv(s_<t) on log frequency, the PoS of
-- s_t, the PoS of s_{t-1} and model size (Fehlauer et al. 2025). The regression itself (with
-- reference levels and standard errors) is a Python asset that reads this table.
-- Incremental by partition (macros/partitions.sql); a partition's rows are rebuilt when its
-- manifest or the suite's token features change (a new evaluation set, token_pos, or
-- frequency_corpus).

{{ config(
    materialized='incremental',
    incremental_strategy='replace_partitions',
    partition_inputs=['manifest', 'token_features'],
    on_schema_change='sync_all_columns',
    post_hook="{{ record_partitions() }}",
) }}

{% set partitions = partition_plan().todo %}

with token_features as materialized (

    select suite, position, token_id, frequency, pos, prev_pos
    from {{ ref('int_token_features') }}
    {% if partitions %}
    where suite in ({% for suite in partitions | map(attribute='suite') | unique %}{{ sql_string(suite) }}{{ ', ' if not loop.last }}{% endfor %})
    {% else %}
    where false
    {% endif %}

)

{% for p in partitions or [none] %}
select
    checkpoints.suite,
    checkpoints.size,
    checkpoints.step,
    context_convergence.position,
    checkpoints.n_params,
    token_features.token_id,
    context_convergence.conv,
    token_features.frequency,
    case when token_features.frequency > 0 then ln(token_features.frequency) end as log_frequency,
    token_features.pos,
    token_features.prev_pos

from (
    select suite, position, conv
    from {{ ref('int_context_convergence') }}
    where {{ partition_filter(p) }}
) as context_convergence
cross join (
    select suite, size, step, n_params
    from {{ ref('stg_checkpoints') }}
    where {{ partition_filter(p) }}
) as checkpoints
left join token_features
    on context_convergence.suite = token_features.suite
    and context_convergence.position = token_features.position
{% if not loop.last %}union all{% endif %}
{% endfor %}
