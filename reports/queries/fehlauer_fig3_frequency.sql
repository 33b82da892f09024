-- Fehlauer et al. (2025), Figure 3 (left), every suite: expected convergence per size, step and
-- frequency bin (log-spaced: decades) of the target token.
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv, conv_std
from mart_conditional_convergence
where condition = 'frequency_bin'
order by suite, n_params, level_order, step;
