-- Figure 7, every suite: expected convergence per size, step and final-surprisal bin of the target token.
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv
from mart_conditional_convergence
where condition = 'final_surprisal_bin'
order by suite, n_params, level_order, step;
