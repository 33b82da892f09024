-- Fehlauer et al. (2025), Figure 9 (right), every suite: the models' mean surprisal per size, step
-- and final-surprisal bin (bits) of the target token, read at each size's final checkpoint.
select suite, size, n_params, step, level, level_order, n_contexts, cross_entropy
from mart_conditional_convergence
where condition = 'final_surprisal_bin'
order by suite, n_params, level_order, step;
