-- Ours, fingerprint regimes, every suite: per size, measure (comparison: fixed_gap, McEntire's s_t to the
-- same seed's checkpoint a fixed gap earlier, or log_spaced, to its previous log-spaced checkpoint),
-- seed and step, the cosine similarity, the regime it falls in and the thresholds it was set by.
select suite, size, n_params, comparison, step, seed, prev_step, similarity_prev, regime, tau_low, tau_high
from mart_fingerprint_similarity
order by suite, n_params, comparison, seed, step;
