-- Fehlauer et al. (2025), Figure 1, every suite: per size and step, expected convergence across
-- seed pairs with its interval from the bootstrap over seeds and contexts (convergence_intervals:
-- band_low, band_high; the spread across seed pairs kept as pair_band_low, pair_band_high) (top); the models' KL to the uniform and to the unigram distribution
-- (mid-top); their ICL score (mid-bottom; NULL for a masked suite, which has none); and their
-- cross-entropy (bottom): means and standard deviations over seeds. n_seeds_missing > 0: a seed
-- of the suite has no checkpoint at that step, so fewer seeds (and pairs) are compared there;
-- the figure rings it. On every row, its size's turning points between the four phases
-- (convergence_phases): each one's step, NULL where not located, and the interval of the seed
-- pairs' own (_low, _high).
with phases as (
    select suite, size,
           max(step) filter (where turning_point = 'uniform_end') as uniform_end,
           max(step_low) filter (where turning_point = 'uniform_end') as uniform_end_low,
           max(step_high) filter (where turning_point = 'uniform_end') as uniform_end_high,
           max(step) filter (where turning_point = 'convergence_peak') as convergence_peak,
           max(step_low) filter (where turning_point = 'convergence_peak') as convergence_peak_low,
           max(step_high) filter (where turning_point = 'convergence_peak') as convergence_peak_high,
           max(step) filter (where turning_point = 'divergence_bottom') as divergence_bottom,
           max(step_low) filter (where turning_point = 'divergence_bottom') as divergence_bottom_low,
           max(step_high) filter (where turning_point = 'divergence_bottom') as divergence_bottom_high,
           max(step) filter (where turning_point = 'reconvergence_start') as reconvergence_start,
           max(step_low) filter (where turning_point = 'reconvergence_start') as reconvergence_start_low,
           max(step_high) filter (where turning_point = 'reconvergence_start') as reconvergence_start_high
    from convergence_phases
    group by suite, size
)
select e.suite, e.size, e.step, e.n_params, e.n_seeds, e.n_seeds_missing, e.expected_conv,
       c.ci_low as band_low, c.ci_high as band_high, c.level as band_level,
       e.pair_conv_std, e.band_low as pair_band_low, e.band_high as pair_band_high,
       m.kl_uniform, m.kl_uniform_seed_std, m.kl_unigram, m.kl_unigram_seed_std,
       i.icl_score, i.icl_score_seed_std,
       m.cross_entropy, m.cross_entropy_seed_std,
       p.* exclude (suite, size)
from mart_expected_convergence e
join mart_model_stats m using (suite, size, step)
left join convergence_intervals c using (suite, size, step)
left join mart_icl_summary i using (suite, size, step)
left join phases p using (suite, size)
order by e.suite, e.n_params, e.step;
