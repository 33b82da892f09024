-- After Kishino et al. (2026), every suite: this warehouse's log-likelihood-vector KL (bits per
-- byte) for the three comparisons the paper sets on one scale, per step: consecutive extracted
-- checkpoints of one seed (per size; at the later step), different seeds (per size), and
-- different sizes of one seed (per size pair), each the median over the seeds or seed pairs
-- with its range; and beside each the paper's own figures for Pythia on the Pile
-- (kishino_reference_kl), repeated on every row of that comparison.
with seed_steps as (
    select distinct suite, size, seed_a as seed, step_a as step from mart_loglik_kl where pair_kind = 'steps'
    union
    select distinct suite, size, seed_b, step_b from mart_loglik_kl where pair_kind = 'steps'
),
next_steps as (
    select suite, size, seed, step, lead(step) over (partition by suite, size, seed order by step) as next_step
    from seed_steps
),
ours as (
    select k.suite, 'consecutive checkpoints' as comparison, k.size as label, k.step_b as step, k.kl_bits_per_byte
    from mart_loglik_kl k
    join next_steps n
        on k.suite = n.suite and k.size = n.size and k.seed_a = n.seed and k.step_a = n.step
        and k.step_b = n.next_step
    where k.pair_kind = 'steps'
    union all
    select suite, 'seeds', size, step_a, kl_bits_per_byte from mart_loglik_kl where pair_kind = 'seeds'
    union all
    select suite, 'sizes', size_a || ' vs ' || size_b, step, kl_bits_per_byte from mart_loglik_size_kl
)
select ours.suite, ours.comparison, ours.label, ours.step,
       median(ours.kl_bits_per_byte) as kl_bits_per_byte,
       min(ours.kl_bits_per_byte) as kl_min,
       max(ours.kl_bits_per_byte) as kl_max,
       count(*) as n_pairs,
       ref.low_bits_per_byte as paper_low, ref.high_bits_per_byte as paper_high,
       ref.models || ' on ' || ref.corpus || ': ' || ref.note as paper_note
from ours
left join kishino_reference_kl ref on ours.comparison = ref.comparison
group by all
order by ours.suite, ours.comparison, ours.label, ours.step;
