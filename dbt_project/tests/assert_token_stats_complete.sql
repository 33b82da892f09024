-- Every seed of a complete partition's manifest has exactly one token_stats row at every
-- context of the partition, and no seed outside the manifest has any.

with checkpoints as (

    select suite, size, step, seeds from {{ ref('stg_checkpoints') }}

),

token_stats as (

    select suite, size, step, seed, position from {{ ref('stg_token_stats') }}

),

positions as (

    select distinct suite, size, step, position from token_stats

),

expected as (

    select
        positions.suite,
        positions.size,
        positions.step,
        unnest(checkpoints.seeds) as seed,
        positions.position

    from positions
    inner join checkpoints
        on positions.suite = checkpoints.suite
        and positions.size = checkpoints.size
        and positions.step = checkpoints.step

),

actual as (

    select suite, size, step, seed, position, count(*) as n_rows
    from token_stats
    group by suite, size, step, seed, position

)

select
    coalesce(expected.suite, actual.suite) as suite,
    coalesce(expected.size, actual.size) as size,
    coalesce(expected.step, actual.step) as step,
    coalesce(expected.seed, actual.seed) as seed,
    coalesce(expected.position, actual.position) as position,
    expected.seed is not null as seed_in_manifest,
    coalesce(actual.n_rows, 0) as n_rows

from expected
full outer join actual
    on expected.suite = actual.suite
    and expected.size = actual.size
    and expected.step = actual.step
    and expected.seed = actual.seed
    and expected.position = actual.position
where expected.seed is null
    or coalesce(actual.n_rows, 0) <> 1
