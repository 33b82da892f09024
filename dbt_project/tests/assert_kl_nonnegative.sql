-- KL divergence is never negative. fp32 rounding may leave a true 0 a hair below it, so allow
-- -1e-5 nats; anything lower, NaN or infinite is a bad partition. int_pair_convergence counts
-- such KLs of every ordered pair of distinct seeds as it reads the lake (a self pair fails
-- assert_pairs_complete).

select
    suite,
    size,
    step,
    seed_a,
    seed_b,
    n_invalid_kl

from {{ ref('int_pair_convergence') }}
where n_invalid_kl > 0
