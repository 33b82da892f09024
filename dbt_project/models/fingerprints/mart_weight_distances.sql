-- Squared L2 distance between the weights of every two checkpoints of one seed (step_a <
-- step_b): estimated from the count sketches (|sketch_a - sketch_b|^2, unbiased, relative error
-- about sqrt(2 / dim)) for every pair, and exact where extract measured it (weight_stats' 'all'
-- row of step_b: to its previous step, and to step 0). The weight side of the diffusion
-- exponents (Kishino et al. 2026). A table rebuilt whole: one row per pair, each a pass over two
-- sketches.

with sketches as materialized (

    select suite, size, step, seed, sketch from {{ ref('stg_weight_sketches') }}

),

exact as (

    select suite, size, step, seed, prev_step, sq_dist_prev, sq_dist_init
    from {{ ref('stg_weight_stats') }}
    where param_group = 'all'

),

seed_checkpoints as (

    select suite, size, step, seed from sketches
    union
    select suite, size, step, seed from exact

),

pairs as (

    select
        checkpoint_a.suite,
        checkpoint_a.size,
        checkpoint_a.seed,
        checkpoint_a.step as step_a,
        checkpoint_b.step as step_b

    from seed_checkpoints as checkpoint_a
    inner join seed_checkpoints as checkpoint_b
        on checkpoint_a.suite = checkpoint_b.suite
        and checkpoint_a.size = checkpoint_b.size
        and checkpoint_a.seed = checkpoint_b.seed
        and checkpoint_a.step < checkpoint_b.step

),

final as (

    select
        pairs.suite,
        pairs.size,
        pairs.seed,
        pairs.step_a,
        pairs.step_b,
        -- sketches of different dimension (another sketch configuration) are not comparable
        case when len(sketch_a.sketch) = len(sketch_b.sketch)
            then pow(list_distance(sketch_a.sketch, sketch_b.sketch), 2) end as sq_dist_sketch,
        case
            when pairs.step_a = exact_b.prev_step then exact_b.sq_dist_prev
            when pairs.step_a = 0 then exact_b.sq_dist_init
        end as sq_dist_exact

    from pairs
    left join sketches as sketch_a
        on pairs.suite = sketch_a.suite
        and pairs.size = sketch_a.size
        and pairs.seed = sketch_a.seed
        and pairs.step_a = sketch_a.step
    left join sketches as sketch_b
        on pairs.suite = sketch_b.suite
        and pairs.size = sketch_b.size
        and pairs.seed = sketch_b.seed
        and pairs.step_b = sketch_b.step
    left join exact as exact_b
        on pairs.suite = exact_b.suite
        and pairs.size = exact_b.size
        and pairs.seed = exact_b.seed
        and pairs.step_b = exact_b.step

)

select * from final
order by suite, size, seed, step_a, step_b
