-- KL divergence is never negative. fp32 rounding may leave a true 0 a hair below it, so allow
-- -1e-5 nats; anything lower, NaN or infinite is a bad partition.

select
    suite,
    size,
    step,
    seed_a,
    seed_b,
    position,
    kl

from {{ ref('stg_pair_kl') }}
where kl < -1e-5
    or isnan(kl)
    or isinf(kl)
