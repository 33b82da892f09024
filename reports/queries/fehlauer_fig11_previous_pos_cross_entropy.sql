-- Fehlauer et al. (2025), Figure 11 (App. E), every suite: the models' mean surprisal per size and
-- step, conditioned on the Penn tag of the token before the target (the eight most frequent).
select suite, size, n_params, step, level, level_order, n_contexts, cross_entropy
from mart_conditional_convergence
where condition = 'prev_pos' and level_order <= 8
order by suite, n_params, level_order, step;
