-- McEntire (2026), Table 3, every suite: per size and measure (comparison), the percentage of
-- training in each regime (per seed, its first checkpoint in the denominator, then the mean across
-- seeds) and the cross-seed regime agreement in percent.
select
    suite, size, n_params, comparison, gap, n_seeds, n_checkpoints,
    100 * share_chaotic as chaotic_pct,
    100 * share_transition as transition_pct,
    100 * share_stable as stable_pct,
    100 * share_all_agree as agreement_pct
from mart_mcentire_table3_regime_share
order by suite, n_params, comparison;
