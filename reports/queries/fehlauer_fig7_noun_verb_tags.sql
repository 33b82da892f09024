-- Fehlauer et al. (2025), Figure 7 (App. C), every suite: expected convergence per size, step and
-- Penn tag of the target token; the figure draws the noun tags (left) and verb tags (right).
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv, conv_std
from mart_conditional_convergence
where condition = 'pos'
order by suite, n_params, level_order, step;
