-- Fehlauer et al. (2025), Figure 9 (left), every suite: the models' mean surprisal (conditional
-- cross-entropy) per size, step and frequency bin of the target token.
select suite, size, n_params, step, level, level_order, n_contexts, cross_entropy
from mart_conditional_convergence
where condition = 'frequency_bin'
order by suite, n_params, level_order, step;
