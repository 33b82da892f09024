-- Per token scalars in range: surprisal, entropy and both KLs are at least 0 (fp32 tolerance
-- 1e-5 nats) and finite; the tail mass is a probability. int_seed_stats counts each seed's rows
-- out of range as it reads the lake.

select
    suite,
    size,
    step,
    seed,
    n_out_of_range_rows

from {{ ref('int_seed_stats') }}
where n_out_of_range_rows > 0
