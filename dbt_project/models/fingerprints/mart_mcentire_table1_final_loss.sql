-- McEntire (2026), Table 1: final validation loss across seeds, per size. The loss is each
-- seed's cross-entropy on the suite's evaluation tokens (mean surprisal, nats per token;
-- int_seed_stats) at the size's last step (int_last_steps), where the paper has WikiText-103
-- validation loss. Mean, sample standard deviation, range across seeds and the coefficient of
-- variation in percent (100 x std / mean). One row per (suite, size).

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

last_steps as (

    select * from {{ ref('int_last_steps') }}

),

seed_stats as (

    select * from {{ ref('int_seed_stats') }}

),

final_losses as (

    select
        seed_stats.suite,
        seed_stats.size,
        seed_stats.step,
        seed_stats.seed,
        seed_stats.mean_surprisal as loss

    from seed_stats
    inner join last_steps
        on seed_stats.suite = last_steps.suite
        and seed_stats.size = last_steps.size
        and seed_stats.step = last_steps.last_step

),

over_seeds as (

    select
        suite,
        size,
        step,
        count(*) as n_seeds,
        avg(loss) as mean_loss,
        stddev_samp(loss) as std_loss,
        min(loss) as min_loss,
        max(loss) as max_loss

    from final_losses
    group by suite, size, step

),

final as (

    select
        over_seeds.suite,
        over_seeds.size,
        checkpoints.n_params,
        over_seeds.step,
        over_seeds.n_seeds,
        over_seeds.mean_loss,
        over_seeds.std_loss,
        over_seeds.min_loss,
        over_seeds.max_loss,
        100 * over_seeds.std_loss / over_seeds.mean_loss as cv_percent

    from over_seeds
    inner join checkpoints
        on over_seeds.suite = checkpoints.suite
        and over_seeds.size = checkpoints.size
        and over_seeds.step = checkpoints.step

)

select * from final
order by suite, n_params
