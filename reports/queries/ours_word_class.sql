-- Ours, every suite: expected convergence per size and step for function against content words
-- of the target token (penn_tags.word_class; the paper's contrast in one line each).
select suite, size, n_params, step, level, level_order, n_contexts, expected_conv
from mart_conditional_convergence
where condition = 'word_class' and level in ('function', 'content')
order by suite, n_params, level_order, step;
