-- Figure 3, every suite: expected convergence per size, step and frequency bin of the target token.
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv
from mart_conditional_convergence
where condition = 'frequency_bin'
order by suite, n_params, level_order, step;
