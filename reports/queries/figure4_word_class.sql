-- Figure 4, every suite: expected convergence per size, step and word class of the target token.
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv
from mart_conditional_convergence
where condition = 'pos_group'
order by suite, n_params, level_order, step;
