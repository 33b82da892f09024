-- Fehlauer et al. (2025), Figure 2 (left), every suite: per size and step, expected convergence on
-- BLiMP minimal pairs with its band, and BLiMP accuracy (mean, worst and best seed).
select suite, size, n_params, step, n_paradigms, n_pairs, n_seeds, expected_conv, band_low, band_high,
       accuracy, accuracy_min, accuracy_max
from mart_blimp_convergence
order by suite, n_params, step;
