-- In every complete partition with ICL scores, every seed of its manifest has exactly one row
-- for every sequence scored there, and no seed outside the manifest has any: the seeds'
-- scores, and so their mean, are over the same sequences. (Also the uniqueness test of
-- stg_icl_scores' key.)

with checkpoints as (

    select suite, size, step, seeds from {{ ref('stg_checkpoints') }}

),

icl_scores as (

    select suite, size, step, seed, sequence_id from {{ ref('stg_icl_scores') }}

),

sequences as (

    select distinct suite, size, step, sequence_id from icl_scores

),

expected as (

    select
        sequences.suite,
        sequences.size,
        sequences.step,
        unnest(checkpoints.seeds) as seed,
        sequences.sequence_id

    from sequences
    inner join checkpoints
        on sequences.suite = checkpoints.suite
        and sequences.size = checkpoints.size
        and sequences.step = checkpoints.step

),

actual as (

    select suite, size, step, seed, sequence_id, count(*) as n_rows
    from icl_scores
    group by suite, size, step, seed, sequence_id

)

select
    coalesce(expected.suite, actual.suite) as suite,
    coalesce(expected.size, actual.size) as size,
    coalesce(expected.step, actual.step) as step,
    coalesce(expected.seed, actual.seed) as seed,
    coalesce(expected.sequence_id, actual.sequence_id) as sequence_id,
    expected.seed is not null as seed_in_manifest,
    coalesce(actual.n_rows, 0) as n_rows

from expected
full outer join actual
    on expected.suite = actual.suite
    and expected.size = actual.size
    and expected.step = actual.step
    and expected.seed = actual.seed
    and expected.sequence_id = actual.sequence_id
where expected.seed is null
    or coalesce(actual.n_rows, 0) <> 1
