-- Ours, each seed's movement along training, every suite: per size and step, the seeds' mean exact
-- KL to their previous checkpoint (and its spread across seeds) beside the KL between seeds.
select suite, size, n_params, step, from_step, n_seeds, kl_mean, kl_seed_std, kl_p50, kl_p99, kl_per_step,
       seed_pair_kl
from mart_trajectory_movement
order by suite, n_params, size, step;
