-- Ours, every suite: expected convergence per size, step and coarse part-of-speech group of the
-- target token (penn_tags.pos_group).
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv
from mart_conditional_convergence
where condition = 'pos_group'
order by suite, n_params, level_order, step;
