-- Every seed of a complete partition's manifest has exactly one token_stats row at every
-- context the partition holds, and no seed outside the manifest has any (a NULL seed counts as
-- outside): so every seed's numbers are over the same contexts. Also the uniqueness test of
-- stg_token_stats' key. Counted per context while the partition was read
-- (int_context_surprisal), rolled up per partition (int_partition_checks).

select *
from {{ ref('int_partition_checks') }}
where n_incomplete_token_contexts > 0
