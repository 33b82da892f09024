-- Figure 9, every suite: expected convergence per size, step and word class of the token before the target.
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv
from mart_conditional_convergence
where condition = 'prev_pos_group'
order by suite, n_params, level_order, step;
