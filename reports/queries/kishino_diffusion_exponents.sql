-- After Kishino et al. (2026), diffusion exponents, every suite: per size, seed and start checkpoint, the KL exponent with its
-- bootstrap interval and the weight-distance exponent.
select suite, size, n_params, seed, start_step, n_points, kl_exponent, kl_exponent_low, kl_exponent_high,
       weight_exponent, weight_n_points
from diffusion_exponents
order by suite, n_params, seed, start_step;
