-- The band brackets the mean, convergence is at most 0 (KL at least 0, fp32 tolerance) and
-- expected_kl mirrors expected_conv.

select *
from {{ ref('mart_expected_convergence') }}
where not (band_low <= expected_conv and expected_conv <= band_high)
    or expected_conv > 1e-5
    or abs(expected_kl + expected_conv) > 1e-9
