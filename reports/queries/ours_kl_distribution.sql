-- Ours, every suite: per size and step, the distribution of KL(p_a || p_b) over every context and
-- ordered seed pair (llama.cpp's KL-divergence percentiles): its mean, median, the percentiles
-- the figure's bands span (10-90, 1-99, 0.1-99.9) and its maximum.
select
    suite, size, n_params, step, n_pairs, n_tokens,
    kl_mean, kl_p0_1, kl_p1, kl_p10, kl_p50, kl_p90, kl_p99, kl_p99_9, kl_max
from mart_kl_distribution
order by suite, n_params, step;
