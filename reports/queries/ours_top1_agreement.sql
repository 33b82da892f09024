-- Ours, every suite: per size and step, the share of contexts where two seeds' most probable
-- token is the same (llama.cpp's "same top p"), over every ordered seed pair, with its standard
-- error across contexts and its range across pairs; n_seeds_missing > 0 where a seed has no
-- checkpoint at the step (ringed in the figure).
select
    suite, size, n_params, step, n_seeds, n_seeds_missing, n_pairs,
    top1_agreement, top1_agreement_se, top1_agreement_pair_min, top1_agreement_pair_max
from mart_kl_distribution
order by suite, n_params, step;
