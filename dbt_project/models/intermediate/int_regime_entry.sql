-- The step at which each seed first enters each fingerprint regime (McEntire 2026): the
-- earliest of its checkpoints in that regime. A seed that never enters a regime has no row
-- for it.

with similarity as (

    select * from {{ ref('int_fingerprint_similarity') }}

),

first_steps as (

    select
        suite,
        size,
        seed,
        regime,
        min(step) as first_step

    from similarity
    where regime is not null
    group by suite, size, seed, regime

)

select * from first_steps
