-- Fehlauer et al. (2025), Figure 2 (right), every suite: per size and step, expected convergence
-- across seed pairs with its band (the report draws it for masked suites); n_seeds_missing > 0
-- where a seed has no checkpoint at the step (ringed in the figure).
select suite, size, n_params, step, n_seeds, n_seeds_missing, n_contexts, expected_conv, band_low, band_high
from mart_expected_convergence
order by suite, n_params, step;
