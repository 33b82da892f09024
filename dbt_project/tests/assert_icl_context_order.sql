-- An ICL reading compares a short with a long context that both end at the target:
-- 0 < short_context < long_context < target_position.

select *
from {{ ref('stg_icl_scores') }}
where not (
    short_context > 0
    and long_context > short_context
    and target_position > long_context
)
