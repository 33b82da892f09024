-- The step at which each seed first enters each fingerprint regime (McEntire 2026, Table 2):
-- the earliest of its checkpoints in that regime, under each measure (comparison: fixed_gap or
-- log_spaced). A seed that never enters a regime has no row for it. settled_step is the step from which the seed stays in the regime through its last
-- checkpoint: set only for the regime of its last checkpoint. It tells a regime entered for
-- good from a visit (on the mini suite the first checkpoints are stable while the learning
-- rate warms up, and chaotic follows).

with similarity as (

    select * from {{ ref('int_fingerprint_similarity') }}
    where regime is not null

),

first_steps as (

    select
        suite,
        size,
        seed,
        comparison,
        regime,
        min(step) as first_step

    from similarity
    group by suite, size, seed, comparison, regime

),

final_regimes as (

    select
        suite,
        size,
        seed,
        comparison,
        arg_max(regime, step) as regime

    from similarity
    group by suite, size, seed, comparison

),

last_elsewhere as (

    -- the last step each seed spent in another regime than its final one
    select
        similarity.suite,
        similarity.size,
        similarity.seed,
        similarity.comparison,
        max(similarity.step) filter (where similarity.regime <> final_regimes.regime) as last_other_step

    from similarity
    inner join final_regimes
        on similarity.suite = final_regimes.suite
        and similarity.size = final_regimes.size
        and similarity.seed = final_regimes.seed
        and similarity.comparison = final_regimes.comparison
    group by similarity.suite, similarity.size, similarity.seed, similarity.comparison

),

settled as (

    select
        similarity.suite,
        similarity.size,
        similarity.seed,
        similarity.comparison,
        similarity.regime,
        min(similarity.step) as settled_step

    from similarity
    inner join final_regimes
        on similarity.suite = final_regimes.suite
        and similarity.size = final_regimes.size
        and similarity.seed = final_regimes.seed
        and similarity.comparison = final_regimes.comparison
        and similarity.regime = final_regimes.regime
    inner join last_elsewhere
        on similarity.suite = last_elsewhere.suite
        and similarity.size = last_elsewhere.size
        and similarity.seed = last_elsewhere.seed
        and similarity.comparison = last_elsewhere.comparison
    where similarity.step > coalesce(last_elsewhere.last_other_step, -1)
    group by similarity.suite, similarity.size, similarity.seed, similarity.comparison, similarity.regime

),

final as (

    select
        first_steps.suite,
        first_steps.size,
        first_steps.seed,
        first_steps.comparison,
        first_steps.regime,
        first_steps.first_step,
        settled.settled_step

    from first_steps
    left join settled
        on first_steps.suite = settled.suite
        and first_steps.size = settled.size
        and first_steps.seed = settled.seed
        and first_steps.comparison = settled.comparison
        and first_steps.regime = settled.regime

)

select * from final
