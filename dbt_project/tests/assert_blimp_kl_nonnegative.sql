-- The two-point KL between two seeds' distributions over a minimal pair's two sentences is
-- never negative, never NaN or infinite, and never NULL (macros/two_point_kl.sql clamps rounding
-- of a true 0 at 0, so any negative value is a fault of the macro, not of rounding); and it is
-- 0 when the two seeds give the pair the same log-odds.

select
    suite,
    size,
    step,
    pair_index,
    seed_a,
    seed_b,
    logit_a,
    logit_b,
    kl

from {{ ref('mart_blimp_pair_kl') }}
where kl is null
    or not (kl >= 0)
    or not isfinite(kl)
    or (logit_a = logit_b and kl <> 0)
