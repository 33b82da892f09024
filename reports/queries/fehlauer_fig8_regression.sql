-- Fehlauer et al. (2025), Figure 8 (App. D), every suite: per step, the coefficients of the
-- regression of conv on log frequency, tags and model size, with standard errors, 95% intervals,
-- observations and R².
select suite, step, term, estimate, std_error, ci_low, ci_high, n_obs, r_squared, reference
from regression_coefficients
order by suite, term, step;
