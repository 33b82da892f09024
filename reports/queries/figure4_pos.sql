-- Figure 4 (subclasses), every suite: expected convergence per size, step and Penn tag of the target token.
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv
from mart_conditional_convergence
where condition = 'pos'
order by suite, n_params, level_order, step;
