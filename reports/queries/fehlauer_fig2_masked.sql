-- Fehlauer et al. (2025), Figure 2 (right), every suite: per size and step, expected convergence
-- across seed pairs with its interval from the bootstrap over seeds and contexts
-- (convergence_intervals: band_low, band_high; the spread across seed pairs kept as pair_band_low,
-- pair_band_high; the report draws it for masked suites); n_seeds_missing > 0 where a seed has no
-- checkpoint at the step (ringed in the figure).
select e.suite, e.size, e.n_params, e.step, e.n_seeds, e.n_seeds_missing, e.n_contexts, e.expected_conv,
       c.ci_low as band_low, c.ci_high as band_high, c.level as band_level,
       e.pair_conv_std, e.band_low as pair_band_low, e.band_high as pair_band_high
from mart_expected_convergence e
left join convergence_intervals c using (suite, size, step)
order by e.suite, e.n_params, e.step;
