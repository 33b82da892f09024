-- One row per (suite, size, step, seed) with a fingerprint, and that seed's previous
-- fingerprinted checkpoint of the size (McEntire 2026 compares consecutive checkpoints). Only
-- checkpoints fingerprinted on the same probe set (manifest probe_set_hash) are compared: a
-- changed probe set starts a new sequence. Reads the fingerprints' keys only, never the vectors.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

fingerprints as (

    select suite, size, step, seed, probe_id from {{ ref('stg_fingerprints') }}

),

per_seed as (

    select
        suite,
        size,
        step,
        seed,
        count(*) as n_probes

    from fingerprints
    group by suite, size, step, seed

),

sequenced as (

    select
        per_seed.suite,
        per_seed.size,
        per_seed.step,
        per_seed.seed,
        checkpoints.n_params,
        checkpoints.probe_set_hash,
        per_seed.n_probes,
        lag(per_seed.step) over (
            partition by per_seed.suite, per_seed.size, per_seed.seed, checkpoints.probe_set_hash
            order by per_seed.step
        ) as prev_step

    from per_seed
    inner join checkpoints
        on per_seed.suite = checkpoints.suite
        and per_seed.size = checkpoints.size
        and per_seed.step = checkpoints.step

)

select * from sequenced
