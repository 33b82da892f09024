-- Ours, log-likelihood-vector KL against exact KL, every suite: per size, step and seed pair, both KLs
-- in bits per byte and their ratio.
select suite, size, n_params, step, seed_a, seed_b, kl_llv_bits_per_byte, kl_exact_bits_per_byte, ratio
from mart_loglik_vs_exact
order by suite, n_params, step, seed_a, seed_b;
