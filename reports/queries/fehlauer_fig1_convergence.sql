-- Fehlauer et al. (2025), Figure 1, every suite: per size and step, expected convergence across
-- seed pairs with its band (top); the models' KL to the uniform and to the unigram distribution
-- (mid-top); their ICL score (mid-bottom; NULL for a masked suite, which has none); and their
-- cross-entropy (bottom): means and standard deviations over seeds. n_seeds_missing > 0: a seed
-- of the suite has no checkpoint at that step, so fewer seeds (and pairs) are compared there;
-- the figure rings it.
select e.suite, e.size, e.step, e.n_params, e.n_seeds, e.n_seeds_missing, e.expected_conv, e.band_low, e.band_high,
       m.kl_uniform, m.kl_uniform_seed_std, m.kl_unigram, m.kl_unigram_seed_std,
       i.icl_score, i.icl_score_seed_std,
       m.cross_entropy, m.cross_entropy_seed_std
from mart_expected_convergence e
join mart_model_stats m using (suite, size, step)
left join mart_icl_summary i using (suite, size, step)
order by e.suite, e.n_params, e.step;
