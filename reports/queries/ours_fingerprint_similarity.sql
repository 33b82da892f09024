-- Ours, fingerprint similarity, every suite: per size and step, the similarity to the previous
-- log-spaced checkpoint (mean over seeds, with the regime thresholds) beside the cross-seed
-- cosine (mean and least similar pair) and linear CKA.
with consecutive as (
    select suite, size, n_params, step, count(similarity_prev) as n_seeds_consecutive,
           avg(similarity_prev) as consecutive_mean, max(tau_low) as tau_low, max(tau_high) as tau_high
    from mart_fingerprint_similarity where comparison = 'log_spaced' group by suite, size, n_params, step
),
cross_seed as (
    select suite, size, n_params, step, n_seeds, n_pairs, mean_similarity as cross_seed_mean,
           min_similarity as cross_seed_min, mean_cka as cross_seed_cka
    from mart_fingerprint_cross_seed
)
select coalesce(c.suite, x.suite) as suite, coalesce(c.size, x.size) as size,
       coalesce(c.n_params, x.n_params) as n_params, coalesce(c.step, x.step) as step,
       c.n_seeds_consecutive, x.n_seeds, x.n_pairs,
       c.consecutive_mean, x.cross_seed_mean, x.cross_seed_min, x.cross_seed_cka, c.tau_low, c.tau_high
from consecutive c full outer join cross_seed x on c.suite = x.suite and c.size = x.size and c.step = x.step
order by 1, 3, 2, 4;
