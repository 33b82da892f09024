-- Fingerprint regimes, every suite: per size, seed and step, the cosine similarity of the fingerprint
-- to the same seed's previous checkpoint and the regime it falls in.
select suite, size, n_params, step, seed, prev_step, similarity_prev, regime
from mart_fingerprint_similarity
order by suite, n_params, seed, step;
