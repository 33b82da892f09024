-- Each size's movement between consecutive checkpoints, over training: per (suite, size, step),
-- the seeds' mean KL(p_step || p_previous) from mart_trajectory_kl (is_previous), its spread
-- across seeds, and the same per training step of the gap (kl_per_step), since log-spaced
-- checkpoints lie ever further apart. Beside it E[conv] between seeds at the step, so that how
-- far each seed moves reads against how far apart the seeds are.

select
    movement.suite,
    movement.size,
    convergence.n_params,
    movement.step,
    movement.from_step,
    movement.n_seeds,
    movement.kl_mean,
    movement.kl_seed_std,
    movement.kl_reverse_mean,
    movement.kl_p50,
    movement.kl_p99,
    movement.kl_mean / (movement.step - movement.from_step) as kl_per_step,
    convergence.expected_kl as seed_pair_kl

from (
    select
        suite,
        size,
        step,
        any_value(from_step) as from_step,
        count(*) as n_seeds,
        avg(kl_mean) as kl_mean,
        stddev_samp(kl_mean) as kl_seed_std,
        avg(kl_reverse_mean) as kl_reverse_mean,
        avg(kl_p50) as kl_p50,
        avg(kl_p99) as kl_p99
    from {{ ref('mart_trajectory_kl') }}
    where is_previous
    group by suite, size, step
) as movement
left join {{ ref('mart_expected_convergence') }} as convergence
    on movement.suite = convergence.suite and movement.size = convergence.size and movement.step = convergence.step
