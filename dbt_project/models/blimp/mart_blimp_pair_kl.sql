-- BLiMP convergence per minimal pair (Fehlauer et al. 2025): for every ordered pair of distinct
-- seeds (both directions), the two-point KL(p_a || p_b) between the seeds' distributions
-- restricted to the pair's two sentences (macros/two_point_kl.sql). The KL is taken per pair
-- and only then averaged (mart_blimp_paradigm); the published code averaged p(good) over a
-- paradigm first, which hides seeds that disagree pair by pair.
--
-- A view: n_seeds * (n_seeds - 1) rows per pair and checkpoint (93M at PolyPythia's 5 sizes x
-- 154 steps x 10 seeds x 1,340 pairs) are a join away from int_blimp_seed_scores, so they are
-- computed when read instead of stored (and copied at every publish); the marts that average
-- them are tables.

{{ config(materialized='view') }}

with seed_scores as (

    select suite, size, step, seed, pair_index, uid, field, logit, p_good
    from {{ ref('int_blimp_seed_scores') }}

)

select
    seed_a.suite,
    seed_a.size,
    seed_a.step,
    seed_a.pair_index,
    seed_a.seed as seed_a,
    seed_b.seed as seed_b,
    seed_a.uid,
    seed_a.field,
    seed_a.logit as logit_a,
    seed_b.logit as logit_b,
    seed_a.p_good as p_good_a,
    seed_b.p_good as p_good_b,
    {{ two_point_kl('seed_a.logit', 'seed_b.logit') }} as kl

from seed_scores as seed_a
inner join seed_scores as seed_b
    on seed_a.suite = seed_b.suite
    and seed_a.size = seed_b.size
    and seed_a.step = seed_b.step
    and seed_a.pair_index = seed_b.pair_index
    and seed_a.seed <> seed_b.seed
