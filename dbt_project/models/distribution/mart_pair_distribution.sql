-- Per checkpoint and ordered seed pair (a, b): the distribution over contexts of KL(p_a || p_b)
-- (percentiles, maximum, mean), top-1 agreement with its standard error, the change in the true
-- token's probability from a to b (delta_p), and the correlation of the two seeds' per-token
-- surprisal: llama.cpp's KL-divergence statistics (int_pair_distribution says how each is
-- computed). A table rebuilt whole: it reads int_pair_distribution, a few rows per partition.
-- Users order by n_params, step, seed_a, seed_b.

with checkpoints as (

    select suite, size, step, n_params from {{ ref('stg_checkpoints') }}

),

pairs as (

    select * from {{ ref('int_pair_distribution') }} where not pooled

)

select
    pairs.suite,
    pairs.size,
    pairs.step,
    checkpoints.n_params,
    pairs.* exclude (suite, size, step, pooled, n_pairs)

from pairs
inner join checkpoints
    on pairs.suite = checkpoints.suite
    and pairs.size = checkpoints.size
    and pairs.step = checkpoints.step
