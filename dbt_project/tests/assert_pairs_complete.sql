-- Every complete partition has, at every context of its token_stats, exactly one KL for every
-- ordered pair of distinct seeds of its manifest: n_seeds * (n_seeds - 1) rows, no duplicate,
-- no self pair, no seed outside the manifest, and no context that token_stats lacks.
-- (This is also the uniqueness test of stg_pair_kl's key.)

with checkpoints as (

    select suite, size, step, n_seeds, seeds from {{ ref('stg_checkpoints') }}

),

token_positions as (

    select distinct suite, size, step, position from {{ ref('stg_token_stats') }}

),

pair_rows as (

    select
        pair_kl.suite,
        pair_kl.size,
        pair_kl.step,
        pair_kl.position,
        count(*) as n_rows,
        count(distinct (pair_kl.seed_a, pair_kl.seed_b)) as n_distinct_pairs,
        count(*) filter (where pair_kl.seed_a = pair_kl.seed_b) as n_self_pairs,
        count(*) filter (
            where not list_contains(checkpoints.seeds, pair_kl.seed_a)
                or not list_contains(checkpoints.seeds, pair_kl.seed_b)
        ) as n_foreign_seed_rows

    from {{ ref('stg_pair_kl') }} as pair_kl
    inner join checkpoints
        on pair_kl.suite = checkpoints.suite
        and pair_kl.size = checkpoints.size
        and pair_kl.step = checkpoints.step
    group by pair_kl.suite, pair_kl.size, pair_kl.step, pair_kl.position

),

compared as (

    select
        coalesce(token_positions.suite, pair_rows.suite) as suite,
        coalesce(token_positions.size, pair_rows.size) as size,
        coalesce(token_positions.step, pair_rows.step) as step,
        coalesce(token_positions.position, pair_rows.position) as position,
        token_positions.position is not null as in_token_stats,
        coalesce(pair_rows.n_rows, 0) as n_rows,
        coalesce(pair_rows.n_distinct_pairs, 0) as n_distinct_pairs,
        coalesce(pair_rows.n_self_pairs, 0) as n_self_pairs,
        coalesce(pair_rows.n_foreign_seed_rows, 0) as n_foreign_seed_rows

    from token_positions
    full outer join pair_rows
        on token_positions.suite = pair_rows.suite
        and token_positions.size = pair_rows.size
        and token_positions.step = pair_rows.step
        and token_positions.position = pair_rows.position

)

select
    compared.*,
    checkpoints.n_seeds * (checkpoints.n_seeds - 1) as expected_pairs

from compared
inner join checkpoints
    on compared.suite = checkpoints.suite
    and compared.size = checkpoints.size
    and compared.step = checkpoints.step
where not compared.in_token_stats
    or compared.n_rows <> checkpoints.n_seeds * (checkpoints.n_seeds - 1)
    or compared.n_distinct_pairs <> checkpoints.n_seeds * (checkpoints.n_seeds - 1)
    or compared.n_self_pairs > 0
    or compared.n_foreign_seed_rows > 0
