-- McEntire (2026), Table 4, every suite: per size and measure (comparison), the mean similarity s_t
-- in each regime (per seed, then averaged across seeds), as the paper's columns, with the seeds ever
-- in each regime.
select
    suite, size, n_params, comparison, gap,
    max(mean_similarity) filter (where regime = 'chaotic') as chaotic,
    max(mean_similarity) filter (where regime = 'transition') as transition,
    max(mean_similarity) filter (where regime = 'stable') as stable,
    max(n_seeds) filter (where regime = 'chaotic') as n_seeds_chaotic,
    max(n_seeds) filter (where regime = 'transition') as n_seeds_transition,
    max(n_seeds) filter (where regime = 'stable') as n_seeds_stable
from mart_mcentire_table4_regime_similarity
group by suite, size, n_params, comparison, gap
order by suite, n_params, comparison;
