-- What each fingerprinted checkpoint of a seed is compared with, under the two measures of the
-- fingerprint regimes (McEntire 2026, eq. 1): one row per (suite, size, step, seed, comparison)
-- the checkpoint takes part in, with prev_step, the same seed's step it is compared with (NULL
-- for the first checkpoint of the measure, which has none).
--
-- * fixed_gap (the paper's): the seed's checkpoint at step - gap (dbt var regime_gap, per suite
--   in regime_suites; the paper's Delta = 50). A checkpoint takes part when the seed has a
--   checkpoint gap steps before or after it; one with only the later is a first (no prev_step).
-- * log_spaced: the seed's previous checkpoint on the log-spaced schedule (PolyPythia's 0, 1,
--   2, 4, ...). The checkpoints that the fixed gap compares (those with a checkpoint gap steps
--   before them) are left out of it unless their step is 0 or a power of two: so the mini
--   suite's checkpoints every 50 steps do not break up its log-spaced neighbours, and a suite
--   without checkpoints a gap apart has its previous checkpoint, as before the gap existed.
--
-- Only checkpoints fingerprinted on the same probe set (manifest probe_set_hash) are compared:
-- a changed probe set starts a new sequence. Reads the fingerprints' keys only, never the vectors.

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

seed_checkpoints as (

    select
        per_seed.suite,
        per_seed.size,
        per_seed.step,
        per_seed.seed,
        checkpoints.n_params,
        checkpoints.probe_set_hash,
        per_seed.n_probes,
        {{ regime_value('gap', 'per_seed.suite') }} as gap

    from per_seed
    inner join checkpoints
        on per_seed.suite = checkpoints.suite
        and per_seed.size = checkpoints.size
        and per_seed.step = checkpoints.step

),

gap_neighbours as (

    select
        current_step.*,
        earlier.step as gap_step,
        later.step is not null as has_later,
        -- 0 and the powers of two: the log-spaced schedule's steps
        current_step.step = 0 or (current_step.step & (current_step.step - 1)) = 0 as on_log_schedule

    from seed_checkpoints as current_step
    left join seed_checkpoints as earlier
        on current_step.suite = earlier.suite
        and current_step.size = earlier.size
        and current_step.seed = earlier.seed
        and current_step.probe_set_hash is not distinct from earlier.probe_set_hash
        and earlier.step = current_step.step - current_step.gap
    left join seed_checkpoints as later
        on current_step.suite = later.suite
        and current_step.size = later.size
        and current_step.seed = later.seed
        and current_step.probe_set_hash is not distinct from later.probe_set_hash
        and later.step = current_step.step + current_step.gap

),

fixed_gap as (

    select
        suite,
        size,
        step,
        seed,
        'fixed_gap' as comparison,
        gap,
        n_params,
        probe_set_hash,
        n_probes,
        gap_step as prev_step

    from gap_neighbours
    where gap_step is not null or has_later

),

log_spaced as (

    select
        suite,
        size,
        step,
        seed,
        'log_spaced' as comparison,
        cast(null as bigint) as gap,
        n_params,
        probe_set_hash,
        n_probes,
        lag(step) over (partition by suite, size, seed, probe_set_hash order by step) as prev_step

    from gap_neighbours
    where gap_step is null or on_log_schedule

),

final as (

    select * from fixed_gap
    union all
    select * from log_spaced

)

select * from final
