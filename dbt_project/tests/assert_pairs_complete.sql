-- Every complete partition has, at every context of its token_stats, exactly one KL for every
-- ordered pair of distinct seeds of its manifest: n_seeds * (n_seeds - 1) rows, no duplicate,
-- no self pair, no seed outside the manifest, and no context that token_stats lacks.
-- (This is also the uniqueness test of stg_pair_kl's key.) Counted per context while the
-- partition was read (int_context_convergence), rolled up per partition (int_partition_checks).

select *
from {{ ref('int_partition_checks') }}
where n_incomplete_pair_contexts > 0
    or n_pair_contexts_without_token_stats > 0
    or n_token_contexts_without_pair_kl > 0
