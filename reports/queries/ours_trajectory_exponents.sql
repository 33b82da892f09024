-- Ours, diffusion exponents from the exact trajectory KL, every suite: per size, seed and anchor
-- step, the exact exponent with its bootstrap interval, the log-likelihood-vector estimator's with
-- its interval and the weight-distance exponent of the same seed and start step.
select suite, size, n_params, seed, anchor_step, n_points, exact_exponent, exact_exponent_low,
       exact_exponent_high, llv_exponent, llv_exponent_low, llv_exponent_high, weight_exponent
from trajectory_exponents
order by suite, n_params, size, seed, anchor_step;
